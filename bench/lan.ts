import { rm } from 'node:fs/promises';
import { OverlayCluster, type DaemonSpec, type OverlayHost } from '../testbed/overlay.js';
import type { Testbed } from '../testbed/netns.js';
import { makeTempDir } from '../testbed/tempdir.js';

export interface LanHost {
  readonly name: string;
  readonly ns: string;
  readonly underlayIp: string;
}

export interface FlanneldHost extends LanHost {
  readonly overlay: OverlayHost;
  /** The host's subnet file (FLANNEL_SUBNET, FLANNEL_MTU, ...). */
  readonly subnet: Record<string, string>;
}

/**
 * The benchmark's LAN: one switch namespace with a bridge and etcd, to which each path plugs its own pair of host
 * namespaces, all alike (veth eth0, MTU 1500, 198.18.0.N/24). Pairs keep paths apart that need the same names
 * (flannel0, port 8285) while every path crosses the same bridge.
 */
export class BenchLan {
  private nextHost = 1;

  private constructor(
    readonly cluster: OverlayCluster,
    private readonly dir: string,
  ) {}

  static async create(): Promise<BenchLan> {
    const dir = await makeTempDir('bench');
    try {
      return new BenchLan(await OverlayCluster.create('bench', dir), dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get bed(): Testbed {
    return this.cluster.bed;
  }

  /** Two hosts with nothing running on them. */
  async addPair(tag: string): Promise<[LanHost, LanHost]> {
    const plain = async (side: string): Promise<LanHost> => {
      const name = `${tag}${side}`;
      const underlayIp = `198.18.0.${this.allocateHost()}`;
      return { name, ns: await this.bed.addHost(name, underlayIp), underlayIp };
    };
    return [await plain('a'), await plain('b')];
  }

  /**
   * Two hosts running flanneld as `spec` says, started one after the other, each once the previous wrote its subnet
   * file (flannel v0.20.2 can miss leases made while its own watch starts). Each host then gets the bridge docker
   * would make from its subnet file. A daemon that exits instead fails this with its last log line, its reason.
   */
  async addFlanneldPair(tag: string, spec: DaemonSpec, env: NodeJS.ProcessEnv = {}): Promise<[FlanneldHost, FlanneldHost]> {
    const start = async (side: string): Promise<FlanneldHost> => {
      const overlay = await this.cluster.addHost(`${tag}${side}`, this.allocateHost(), env, spec);
      const subnet = await this.cluster.subnetFileOf(overlay);
      await this.bed.addBridge(overlay.ns, subnet.FLANNEL_SUBNET, Number(subnet.FLANNEL_MTU));
      return { name: overlay.name, ns: overlay.ns, underlayIp: overlay.underlayIp, overlay, subnet };
    };
    return [await start('a'), await start('b')];
  }

  /**
   * Stops every daemon, deletes every namespace and the run's files. Resolves with the processes that escaped the
   * namespaces' deletion and had to be killed on their own (a bug worth reporting; see Testbed.cleanup).
   */
  async cleanup(): Promise<{ pid: number; command: string }[]> {
    const escaped = await this.cluster.cleanup();
    await rm(this.dir, { recursive: true, force: true });
    return escaped;
  }

  /** The next host number N (198.18.0.N); .254 is the switch. */
  private allocateHost(): number {
    if (this.nextHost > 253) throw new Error('the bench LAN has room for 253 hosts');
    return this.nextHost++;
  }
}
