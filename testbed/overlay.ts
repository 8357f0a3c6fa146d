import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { EtcdServer, etcdOnSwitch } from './etcd.js';
import { FlanneldProcess, flanneldArgs } from './flanneld.js';
import { Testbed, waitFor } from './netns.js';

/** The daemon exited while something waited on it; the message is its last log line. */
export class FlanneldExited extends Error {}

/** etcd's data dir, under the cluster's dir. */
const ETCD_DATA = 'etcd';

export interface OverlayHost {
  readonly name: string;
  readonly ns: string;
  readonly underlayIp: string;
  readonly subnetFile: string;
  /** FLANNELD_* variables and the daemon spec it runs with, kept for restarts. */
  readonly env: NodeJS.ProcessEnv;
  readonly spec: DaemonSpec;
  daemon: FlanneldProcess;
  /** FLANNEL_SUBNET from the subnet file, e.g. 198.19.44.1/24 (the container bridge's address). */
  bridgeCidr?: string;
  container?: { ns: string; ip: string };
}

/** How a host's flanneld runs, where it differs from the cluster's defaults. */
export interface DaemonSpec {
  /** etcd prefix (another network on the same etcd: etcd.network()); the cluster's own by default. */
  readonly prefix?: string;
  /** Another flanneld executable with flannel's flags (e.g. real flannel), instead of the built CLI. */
  readonly binary?: string;
  /** Flags after the common ones. */
  readonly args?: string[];
}

/** Where a host stands on the LAN, where it differs from 198.18.0.N. */
export interface HostSpec extends DaemonSpec {
  readonly underlayIp?: string;
  /** Runs in the host's namespace before flanneld starts (extra routes, say). */
  readonly prepare?: (ns: string) => Promise<unknown>;
}

/** The host's lease as flannel names it: `198.19.44.0/24`, its address `198.19.44.0`, its etcd key `198.19.44.0-24`. */
export function leaseOf(host: OverlayHost): { subnet: string; ip: string; key: string } {
  if (!host.bridgeCidr) throw new Error(`${host.name} has no lease yet (addContainer reads it from the subnet file)`);
  const subnet = host.bridgeCidr.replace(/\.1\//, '.0/');
  return { subnet, ip: subnet.split('/')[0], key: subnet.replace('/', '-') };
}

/**
 * A cluster on one machine: a switch namespace running etcd on 198.18.0.254, host namespaces running the real
 * flanneld, and a container namespace behind each host's bridge (set up from the subnet file, as docker would).
 * etcd is the cluster's own, alone in the switch namespace, so it sits where flannel expects it: port 2379, keys
 * under /coreos.com/network. Everything on disk (subnet files, etcd's data) is under `dir`;
 * cleanup() removes etcd's data, the caller the rest.
 */
export class OverlayCluster {
  readonly hosts = new Map<string, OverlayHost>();

  private constructor(
    readonly bed: Testbed,
    readonly etcd: EtcdServer,
    readonly prefix: string,
    readonly dir: string,
  ) {}

  /** Without `config`, the cluster's own prefix stays empty and hosts join networks made with etcd.network(). */
  static async create(tag: string, dir: string, config?: string): Promise<OverlayCluster> {
    const bed = await Testbed.create(tag);
    try {
      const etcd = await EtcdServer.start({ ...etcdOnSwitch(bed), dataDir: join(dir, ETCD_DATA) });
      const prefix = '/coreos.com/network';
      if (config !== undefined) await etcd.put(`${prefix}/config`, config);
      return new OverlayCluster(bed, etcd, prefix, dir);
    } catch (err) {
      await bed.cleanup();
      throw err;
    }
  }

  /** Hosts h1 (198.18.0.1) to hN, each running flanneld and holding a container. */
  async addHostsWithContainers(count: number): Promise<OverlayHost[]> {
    const hosts: OverlayHost[] = [];
    for (let n = 1; n <= count; n++) hosts.push(await this.addHost(`h${n}`, n));
    for (const h of hosts) await this.addContainer(h);
    return hosts;
  }

  /** Adds host N (198.18.0.N unless `spec.underlayIp`) and starts flanneld on it, after `spec.prepare`. */
  async addHost(name: string, n: number, env: NodeJS.ProcessEnv = {}, spec: HostSpec = {}): Promise<OverlayHost> {
    const underlayIp = spec.underlayIp ?? `198.18.0.${n}`;
    const ns = await this.bed.addHost(name, underlayIp);
    await spec.prepare?.(ns);
    const subnetFile = join(this.dir, `${name}.env`);
    const host: OverlayHost = { name, ns, underlayIp, subnetFile, env, spec, daemon: this.startDaemon(ns, subnetFile, env, spec) };
    this.hosts.set(name, host);
    return host;
  }

  startDaemon(ns: string, subnetFile: string, env: NodeJS.ProcessEnv = {}, spec: DaemonSpec = {}): FlanneldProcess {
    const flags = flanneldArgs({ etcdEndpoints: this.etcd.endpoint, etcdPrefix: spec.prefix ?? this.prefix, iface: 'eth0', subnetFile });
    return new FlanneldProcess([...flags, ...(spec.args ?? [])], { netns: ns, env, binary: spec.binary });
  }

  /**
   * Waits for the host's subnet file and returns its variables. The file is flannel's contract, so this works for
   * any flanneld binary; a daemon that exits first fails this with its last log line (its reason).
   */
  async subnetFileOf(host: OverlayHost, timeoutMs = 30_000): Promise<Record<string, string>> {
    return waitFor(
      `${host.name}'s subnet file`,
      async () => {
        if (!host.daemon.running) throw new FlanneldExited(host.daemon.lastLogLine() || `flanneld exited with ${host.daemon.child.exitCode}`);
        const vars = parseEnvFile(await readFile(host.subnetFile, 'utf8').catch(() => ''));
        return vars.FLANNEL_SUBNET && vars.FLANNEL_MTU ? vars : undefined;
      },
      timeoutMs,
      (err) => err instanceof FlanneldExited,
    );
  }

  /**
   * Stops the host's flanneld with `signal`, runs `whileDown` (to inspect or change what it left), and starts it
   * again with the same flags and variables (`env` set over them for this start only: host.env stays as it is, so a
   * later restart goes back to the host's own). Resolves once the new daemon has written its subnet file.
   */
  async restartDaemon(
    host: OverlayHost,
    opts: { signal?: NodeJS.Signals; whileDown?: () => Promise<void>; env?: NodeJS.ProcessEnv } = {},
  ): Promise<FlanneldProcess> {
    const stopped = await host.daemon.stop(opts.signal ?? 'SIGTERM');
    if (opts.signal !== 'SIGKILL' && stopped.code !== 0) throw new Error(`flanneld on ${host.name} exited ${stopped.code}:\n${stopped.stderr}`);
    await opts.whileDown?.();
    host.daemon = this.startDaemon(host.ns, host.subnetFile, { ...host.env, ...opts.env }, host.spec);
    await host.daemon.waitForEvent('subnet-file-written');
    return host.daemon;
  }

  /** Waits for the host's subnet file, then gives it a container on a bridge holding FLANNEL_SUBNET. */
  async addContainer(host: OverlayHost): Promise<void> {
    await host.daemon.waitForEvent('subnet-file-written');
    const vars = parseEnvFile(await readFile(host.subnetFile, 'utf8'));
    host.bridgeCidr = vars.FLANNEL_SUBNET;
    const [first] = host.bridgeCidr.split('/');
    const ip = first.replace(/\.1$/, '.2');
    const ns = await this.bed.addContainer(host.ns, `${host.name}c`, host.bridgeCidr, ip);
    // The container's MTU follows FLANNEL_MTU, as docker --mtu would set it.
    await this.bed.ip(ns, 'link', 'set', 'eth0', 'mtu', vars.FLANNEL_MTU);
    host.container = { ns, ip };
  }

  /** Pings from one host's container to another's. */
  ping(from: OverlayHost, to: OverlayHost, count = 1): Promise<{ ok: boolean; output: string }> {
    return this.bed.ping(from.container!.ns, to.container!.ip, count);
  }

  /** Waits until a ping from one container to another gets through (routes follow leases asynchronously). */
  async expectReachable(from: OverlayHost, to: OverlayHost, timeoutMs = 10_000): Promise<void> {
    await waitFor(`${from.name} -> ${to.name} over the overlay`, async () => (await this.ping(from, to)).ok, timeoutMs);
  }

  /** expectReachable both ways between every two of `hosts`, pair by pair in order (h1↔h2, h1↔h3, h2↔h3, …). */
  async expectAllReachable(hosts: readonly OverlayHost[]): Promise<void> {
    for (let i = 0; i < hosts.length; i++) {
      for (const other of hosts.slice(i + 1)) {
        await this.expectReachable(hosts[i], other);
        await this.expectReachable(other, hosts[i]);
      }
    }
  }

  /** GET http://127.0.0.1:<port><path> from inside the host's namespace, where flanneld's HTTP endpoints listen. */
  async httpGet(host: OverlayHost, port: number, path: string): Promise<{ status: number; body: string }> {
    const script = `fetch('http://127.0.0.1:${port}${path}').then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))`;
    return JSON.parse((await this.bed.exec(host.ns, [process.execPath, '-e', script])).stdout) as { status: number; body: string };
  }

  /** The Prometheus text of the host's flanneld. */
  async metrics(host: OverlayHost, port: number): Promise<string> {
    return (await this.httpGet(host, port, '/metrics')).body;
  }

  /** Stops every daemon and etcd, then the test bed (see Testbed.cleanup, whose escaped processes it resolves with). */
  async cleanup(): Promise<{ pid: number; command: string }[]> {
    await Promise.all([...this.hosts.values()].map((h) => h.daemon.stop('SIGKILL').catch(() => undefined)));
    await this.etcd.stop().catch(() => undefined);
    const escaped = await this.bed.cleanup();
    await rm(join(this.dir, ETCD_DATA), { recursive: true, force: true });
    return escaped;
  }
}
