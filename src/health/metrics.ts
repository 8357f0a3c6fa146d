import { Counter, Gauge, Registry } from 'prom-client';
import type { Daemon } from '../daemon.js';

/**
 * Prometheus metrics read from the daemon at scrape time: nothing is counted per packet in JavaScript, the
 * datapath counters come from the native engine when Prometheus asks.
 */
export function createMetrics(daemon: Daemon): Registry {
  const registry = new Registry();
  const counters = () => daemon.network?.counters();

  new Gauge({
    name: 'flannel_lease_expiry_timestamp_seconds',
    help: 'When the subnet lease expires unless renewed (0 for a reservation or no lease)',
    registers: [registry],
    collect() {
      this.set((daemon.lease?.expiration?.getTime() ?? 0) / 1000);
    },
  });
  new Gauge({
    name: 'flannel_peers',
    help: 'Peer leases currently known',
    registers: [registry],
    collect() {
      this.set(daemon.peerCount);
    },
  });
  new Counter({
    name: 'flannel_lease_renewals_total',
    help: 'Successful lease renewals',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(daemon.stats.renewals);
    },
  });
  new Counter({
    name: 'flannel_etcd_errors_total',
    help: 'Failed etcd operations (renewals, lost watches)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(daemon.stats.etcdErrors);
    },
  });
  const packets = new Counter({ name: 'flannel_datapath_packets_total', help: 'Packets carried', labelNames: ['direction'], registers: [registry] });
  const bytes = new Counter({ name: 'flannel_datapath_bytes_total', help: 'Bytes carried', labelNames: ['direction'], registers: [registry] });
  const offload = new Counter({ name: 'flannel_datapath_offload_total', help: 'TUN super packets split for the wire (gso_split) and received datagrams merged for the TUN (gro_merge)', labelNames: ['kind'], registers: [registry] });
  const drops = new Counter({ name: 'flannel_datapath_drops_total', help: 'Packets dropped, by reason', labelNames: ['reason'], registers: [registry] });
  const queuePackets = new Counter({ name: 'flannel_datapath_queue_packets_total', help: 'Datagrams sent (tx) and received (rx) on each TUN queue and its UDP socket', labelNames: ['queue', 'direction'], registers: [registry] });
  // One collect for the datapath families, so they come from one consistent snapshot.
  const collectDatapath = () => {
    const c = counters();
    for (const m of [packets, bytes, offload, drops, queuePackets]) m.reset();
    if (!c) return;
    packets.inc({ direction: 'tx' }, c.txPackets);
    packets.inc({ direction: 'rx' }, c.rxPackets);
    bytes.inc({ direction: 'tx' }, c.txBytes);
    bytes.inc({ direction: 'rx' }, c.rxBytes);
    offload.inc({ kind: 'gso_split' }, c.gsoSplits);
    offload.inc({ kind: 'gro_merge' }, c.groMerges);
    for (const [reason, n] of Object.entries(c.drops)) drops.inc({ reason }, n);
    c.queues.forEach((q, i) => {
      queuePackets.inc({ queue: String(i), direction: 'tx' }, q.txPackets);
      queuePackets.inc({ queue: String(i), direction: 'rx' }, q.rxPackets);
    });
  };
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    collectDatapath();
    return metrics();
  };
  return registry;
}
