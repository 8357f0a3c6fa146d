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
  daemon: FlanneldProcess;
  /** FLANNEL_SUBNET from the subnet file, e.g. 198.19.44.1/24 (the container bridge's address). */
  bridgeCidr?: string;
  container?: { ns: string; ip: string };
}

/** How a host's flanneld runs, where it differs from the cluster's defaults. */
export interface DaemonSpec {
  /** etcd prefix (see addNetwork); the cluster's own by default. */
  readonly prefix?: string;
  /** Another flanneld executable with flannel's flags (e.g. real flannel), instead of the built CLI. */
  readonly binary?: string;
  /** Flags after the common ones. */
  readonly args?: string[];
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
    private readonly dir: string,
  ) {}

  /** Without `config`, the cluster's own prefix stays empty and hosts join networks made with addNetwork. */
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

  /**
   * A second network on the same etcd and LAN, under its own prefix (`/<testbed>-<tag>/network`), for hosts that
   * must run another backend than the cluster's; returns the prefix to pass in a DaemonSpec.
   */
  async addNetwork(tag: string, config: string): Promise<string> {
    const prefix = `/${this.bed.prefix}-${tag}/network`;
    await this.etcd.put(`${prefix}/config`, config);
    return prefix;
  }

  /** Adds host N (198.18.0.N) and starts flanneld on it. */
  async addHost(name: string, n: number, env: NodeJS.ProcessEnv = {}, spec: DaemonSpec = {}): Promise<OverlayHost> {
    const underlayIp = `198.18.0.${n}`;
    const ns = await this.bed.addHost(name, underlayIp);
    const subnetFile = join(this.dir, `${name}.env`);
    const host: OverlayHost = { name, ns, underlayIp, subnetFile, daemon: this.startDaemon(ns, subnetFile, env, spec) };
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

  async metrics(host: OverlayHost, port: number): Promise<string> {
    const script = `fetch('http://127.0.0.1:${port}/metrics').then(r => r.text()).then(t => process.stdout.write(t))`;
    return (await this.bed.exec(host.ns, [process.execPath, '-e', script])).stdout;
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.daemon.stop('SIGKILL').catch(() => undefined)));
    await this.etcd.stop().catch(() => undefined);
    await this.bed.cleanup();
    await rm(join(this.dir, ETCD_DATA), { recursive: true, force: true });
  }
}
