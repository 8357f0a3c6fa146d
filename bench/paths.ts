import type { ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OverlayCluster } from '../testbed/overlay.js';
import { waitFor } from '../testbed/netns.js';

/**
 * The packet paths we compare, all between the same two network-namespace hosts (198.18.0.1 and .2 on a veth
 * LAN through a bridge), each reachable at its own pair of addresses so they can coexist in one run. Overlays stay
 * inside 198.19.0.0/16: flannel leases from 198.19.0.0/17, VXLAN uses 198.19.200.0/24 and the socat relay
 * 198.19.201.0/24, so no path's route can shadow another's.
 */
export const METRICS_PORT = 9110;

export interface BenchPath {
  readonly name: string;
  readonly description: string;
  /** Address of host 2 on this path, as seen from host 1. */
  readonly target: string;
}

export interface BenchTopology {
  readonly cluster: OverlayCluster;
  readonly h1: string;
  readonly h2: string;
  readonly paths: BenchPath[];
  /** flanneld's Prometheus text from each host, for the datapath counters behind a result. */
  datapathMetrics(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function buildTopology(): Promise<BenchTopology> {
  const dir = await mkdtemp(join(tmpdir(), 'ft-bench-'));
  const cluster = await OverlayCluster.create('bench', dir, '{"Network":"198.19.0.0/17","Backend":{"Type":"udp"}}');
  const extra: ChildProcess[] = [];
  try {
    const env = { FLANNELD_METRICS_PORT: String(METRICS_PORT) };
    const hosts = [await cluster.addHost('h1', 1, env), await cluster.addHost('h2', 2, env)];
    for (const h of hosts) await h.daemon.waitForEvent('subnet-file-written');
    const [h1, h2] = hosts.map((h) => h.ns);
    const bed = cluster.bed;

    // Kernel VXLAN between the hosts, MTU 1450 as flannel's vxlan backend would set it.
    for (const [ns, local, remote, addr] of [[h1, '198.18.0.1', '198.18.0.2', '198.19.200.1/24'], [h2, '198.18.0.2', '198.18.0.1', '198.19.200.2/24']]) {
      await bed.ip(ns, 'link', 'add', 'vxbench', 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'local', local, 'remote', remote, 'dev', 'eth0');
      await bed.ip(ns, 'link', 'set', 'vxbench', 'mtu', '1450', 'up');
      await bed.ip(ns, 'addr', 'add', addr, 'dev', 'vxbench');
    }

    // A naive userspace TUN<->UDP relay: socat, one packet per read/write/sendto, MTU like flannel0's.
    for (const [ns, local, remote, addr] of [[h1, '198.18.0.1', '198.18.0.2', '198.19.201.1/24'], [h2, '198.18.0.2', '198.18.0.1', '198.19.201.2/24']]) {
      extra.push(bed.spawn(ns, ['socat', `TUN:${addr},tun-type=tun,iff-no-pi,iff-up,tun-name=socbench`, `UDP-DATAGRAM:${remote}:9000,bind=${local}:9000`]));
      await waitFor(`socat TUN in ${ns}`, async () => (await bed.ip(ns, 'link', 'show', 'socbench')).includes('UP'));
      await bed.ip(ns, 'link', 'set', 'socbench', 'mtu', '1472');
    }

    const flannelTarget = (await bed.ip(h2, '-4', '-o', 'addr', 'show', 'dev', 'flannel0')).match(/inet (\S+)\//)![1];
    return {
      cluster,
      h1,
      h2,
      paths: [
        { name: 'bare-lan', description: 'veth LAN, no tunnel', target: '198.18.0.2' },
        { name: 'kernel-vxlan', description: 'kernel VXLAN, MTU 1450', target: '198.19.200.2' },
        { name: 'naive-relay', description: 'socat TUN<->UDP relay', target: '198.19.201.2' },
        { name: 'flannel-ts-udp', description: 'flannel-ts udp backend (flannel0)', target: flannelTarget },
      ],
      datapathMetrics: async () => {
        const out: string[] = [];
        for (const h of hosts) {
          const text = await cluster.metrics(h, METRICS_PORT);
          out.push(text.split('\n').filter((l) => l.startsWith('flannel_datapath') && !l.endsWith(' 0')).join('\n'));
        }
        return out;
      },
      cleanup: async () => {
        for (const p of extra) p.kill('SIGKILL');
        await cluster.cleanup();
      },
    };
  } catch (err) {
    for (const p of extra) p.kill('SIGKILL');
    await cluster.cleanup();
    throw err;
  }
}
