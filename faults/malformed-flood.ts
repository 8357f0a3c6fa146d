import { builtFile } from '../testbed/built.js';
import { leaseOf, type OverlayHost } from '../testbed/overlay.js';
import { rssKiB } from '../testbed/proc.js';
import { waitFor } from '../testbed/netns.js';
import { kernelUdpDrops, parseMetrics, pingFor, sumOf } from './observe.js';
import { run, type ScenarioResult } from './scenario.js';
import { withTwoHosts } from './two-hosts.js';

export interface MalformedFloodOptions {
  readonly count: number;
  /** Datagrams per second. */
  readonly rate: number;
}

const METRICS = 9102;
const FLOOD = builtFile('faults/flood.js');
const ROGUE_IP = '198.18.0.3';

/**
 * 4. A rogue host with a lease of its own sends `count` malformed and hostile datagrams to host a's port 8285 at a
 * bounded rate (random bytes, empty, truncated and bad headers, wrong versions, destinations ours, foreign and
 * multicast, spoofed sources, expiring TTLs) while b's container pings a's. Expected: no crash, no legitimate ping
 * lost, every datagram sent accounted for (the fast path or the engine received or dropped it by reason, or the
 * kernel dropped it before the socket), and a's RSS flat.
 */
export function malformedFlood(o: MalformedFloodOptions): Promise<ScenarioResult> {
  return run('malformed-flood', (f) =>
    withTwoHosts('fflood', { a: { FLANNELD_METRICS_PORT: String(METRICS), FLANNELD_HEALTHZ_IP: '127.0.0.1' } }, async ({ cluster, a, b }) => {
      const rogueNs = await cluster.bed.addHost('rogue', ROGUE_IP);
      // A /24 neither a nor b holds: writing over theirs would move them (and cut their containers off).
      const taken = [a, b].map((host) => leaseOf(host).ip);
      const rogueSubnet = ['198.19.250.0', '198.19.251.0', '198.19.252.0'].find((s) => !taken.includes(s))!;
      await cluster.etcd.put(`${cluster.prefix}/subnets/${rogueSubnet}-24`, JSON.stringify({ PublicIP: ROGUE_IP, BackendType: 'udp' }));
      await a.daemon.waitForEvent('peer-added', { subnet: `${rogueSubnet}/24` });
      await cluster.expectReachable(b, a);

      // Every datagram ends in exactly one place: carried or dropped by the eBPF fast path in tc ingress (what it
      // passes on reaches the engine's socket), carried or dropped by the engine, or dropped by the kernel before it.
      const counted = async (host: OverlayHost) => {
        const m = parseMetrics(await cluster.metrics(host, METRICS));
        const fastPath = sumOf(m, 'flannel_fastpath_packets_total{direction="rx"}') + sumOf(m, 'flannel_fastpath_drops_total');
        const engine = sumOf(m, 'flannel_datapath_packets_total{direction="rx"}') + sumOf(m, 'flannel_datapath_drops_total');
        return { all: fastPath + engine + (await kernelUdpDrops(cluster.bed, host.ns)), fastPath };
      };
      // The counts once two readings in a row agree: nothing is still queued on its way to a counter.
      const settled = async (host: OverlayHost) => {
        let last: Awaited<ReturnType<typeof counted>> | undefined;
        return waitFor(`${host.name}'s counters to settle`, async () => {
          const now = await counted(host);
          const same = last?.all === now.all;
          last = now;
          return same ? now : undefined;
        }, 10_000);
      };
      const pid = a.daemon.child.pid!;
      const before = { counted: await settled(a), rss: await rssKiB(pid) };
      const floodS = o.count / o.rate;
      const pings = pingFor(cluster.bed, b.container!.ns, a.container!.ip, floodS + 3, 0.1);
      const options = { bind: ROGUE_IP, target: a.underlayIp, port: 8285, count: o.count, rate: o.rate, seed: 2544, rogue: rogueSubnet, ours: a.container!.ip, foreign: b.container!.ip };
      const { stdout } = await cluster.bed.exec(rogueNs, [process.execPath, FLOOD, JSON.stringify(options)], { timeoutMs: (floodS * 3 + 60) * 1000 });
      const flood = JSON.parse(stdout) as { sent: number; errors: number; byKind: Record<string, number> };
      const ping = await pings;
      const after = { counted: await settled(a), rss: await rssKiB(pid) };

      const accounted = after.counted.all - before.counted.all - ping.transmitted;
      const rssGrowth = (after.rss - before.rss) / before.rss;
      f.set('sent', flood.sent);
      f.set('send_errors', flood.errors);
      f.set('rate_per_s', o.rate);
      f.set('accounted', accounted);
      f.set('by_fast_path', after.counted.fastPath - before.counted.fastPath);
      f.set('kinds', Object.keys(flood.byKind).length);
      f.set('pings', ping.transmitted);
      f.set('pings_lost', ping.transmitted - ping.received);
      f.set('rss_kib_before', before.rss);
      f.set('rss_growth_pct', rssGrowth * 100);
      f.expect(a.daemon.running, 'flanneld on the target exited');
      f.expect(Object.values(flood.byKind).every((n) => n > 0), 'a kind of datagram was never sent');
      f.expect(accounted === flood.sent, `${flood.sent} datagrams sent, ${accounted} counted (received, dropped by reason, or dropped by the kernel)`);
      f.expect(ping.transmitted > 0 && ping.received === ping.transmitted, `${ping.transmitted - ping.received} of ${ping.transmitted} legitimate pings lost`);
      f.expect(rssGrowth < 0.05, `RSS grew ${(rssGrowth * 100).toFixed(1)}%`);
    }),
  );
}
