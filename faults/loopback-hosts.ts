import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FlanneldProcess, flanneldArgs } from '../testbed/flanneld.js';
import { makeTempDir } from '../testbed/tempdir.js';

export interface LoopbackHostsOptions<E> {
  /** Names the temp dir that holds the subnet files. */
  readonly tag: string;
  readonly prefix: string;
  /** Host n's public IP is 198.18.<subnet>.n. */
  readonly subnet: number;
  /** FLANNELD_* variables every host runs with. */
  readonly env: NodeJS.ProcessEnv;
  /** Starts the etcd the hosts use; one that fails to start cleans up after itself. */
  readonly startEtcd: () => Promise<E>;
  /** The --etcd-endpoints value for that etcd. */
  readonly endpoints: (etcd: E) => string;
}

export interface LoopbackHosts<E> {
  readonly dir: string;
  readonly etcd: E;
  /** Every flanneld started, in order. */
  readonly daemons: readonly FlanneldProcess[];
  /** Starts host n's flanneld: on lo, public IP 198.18.<subnet>.n, subnet file <dir>/n.env. */
  start(host: number): FlanneldProcess;
}

/**
 * The stage of the scenarios without network namespaces: an etcd and flanneld hosts on loopback (whatever backend
 * the network config names). `body` runs on it; afterwards, whatever happened, every flanneld is SIGKILLed, etcd
 * stopped and the dir removed.
 */
export async function withLoopbackHosts<E extends { stop(): Promise<void> }>(o: LoopbackHostsOptions<E>, body: (hosts: LoopbackHosts<E>) => Promise<void>): Promise<void> {
  const dir = await makeTempDir(o.tag);
  let etcd: E | undefined;
  const daemons: FlanneldProcess[] = [];
  try {
    etcd = await o.startEtcd();
    const endpoints = o.endpoints(etcd);
    const start = (host: number) => {
      const d = new FlanneldProcess(
        flanneldArgs({ etcdEndpoints: endpoints, etcdPrefix: o.prefix, iface: 'lo', publicIp: `198.18.${o.subnet}.${host}`, subnetFile: join(dir, `${host}.env`) }),
        { env: o.env },
      );
      daemons.push(d);
      return d;
    };
    await body({ dir, etcd, daemons, start });
  } finally {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL').catch(() => undefined)));
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
