import { Counter, Gauge, Registry } from 'prom-client';
import type { MetricSample } from '../backend/backend.js';
import type { EtcdErrorKind } from '../subnet/etcd-status.js';
import type { Lease } from '../subnet/lease.js';
import type { IgnoreReason } from '../subnet/lease-screen.js';

/** What the metrics read from the daemon: a narrow view, so that this module depends on no daemon internals. */
export interface MetricsSource {
  readonly lease: Lease | undefined;
  readonly peerCount: number;
  readonly renewals: number;
  /** Failed etcd requests by kind: unreachable or timed out, refused (credentials, role), other. */
  readonly etcdErrors: Readonly<Record<EtcdErrorKind, number>>;
  /** Times the running datapath stopped (a deleted flannel0, a dead socket) and the backend was restarted. */
  readonly datapathFailures: number;
  /** Times the lease was re-acquired on another subnet than the one held last. */
  readonly leaseMoves: number;
  /** Peer leases not routed right now, by reason. */
  readonly ignoredLeases: Readonly<Record<IgnoreReason, number>>;
  /** The backend's own samples (datapath packets, drops, ...), read at scrape time. */
  backendMetrics(): readonly MetricSample[];
}

/**
 * Prometheus metrics read from the daemon at scrape time: nothing is counted per packet in JavaScript, the
 * datapath counters come from the backend (the native engine) when Prometheus asks.
 */
export function createMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  const total = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  /** One series per key of the record `read` returns, labelled `label`. */
  const labelled = (kind: 'gauge' | 'counter', name: string, help: string, label: string, read: () => Readonly<Record<string, number>>) => {
    const Metric = kind === 'gauge' ? Gauge : Counter;
    return new Metric({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [value, n] of Object.entries(read())) {
          if (this instanceof Gauge) this.set({ [label]: value }, n);
          else this.inc({ [label]: value }, n);
        }
      },
    });
  };
  gauge('flannel_lease_expiry_timestamp_seconds', 'When the subnet lease expires unless renewed (0 for a reservation or no lease)', () => (source.lease?.expiration?.getTime() ?? 0) / 1000);
  gauge('flannel_peers', 'Peer leases currently known', () => source.peerCount);
  total('flannel_lease_renewals_total', 'Successful lease renewals', () => source.renewals);
  total('flannel_lease_moves_total', 'Lease re-acquisitions on another subnet than the one held last (docker must restart)', () => source.leaseMoves);
  labelled('counter', 'flannel_etcd_errors_total', 'Failed etcd requests, by kind: unavailable (unreachable, timed out), denied (credentials, role), other', 'kind', () => source.etcdErrors);
  total('flannel_datapath_failures_total', 'Times the running datapath stopped and the backend was restarted', () => source.datapathFailures);
  labelled('gauge', 'flannel_leases_ignored', 'Peer leases not routed, by reason: outside_network, overlap (with another lease or ours)', 'reason', () => source.ignoredLeases);

  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => (await metrics()) + formatSamples(source.backendMetrics());
  return registry;
}

/** Prometheus text for the backend's samples, grouped by name in the order they first appear. */
function formatSamples(samples: readonly MetricSample[]): string {
  const byName = new Map<string, MetricSample[]>();
  for (const s of samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  let text = '';
  for (const [name, group] of byName) {
    text += `# HELP ${name} ${escapeHelp(group[0].help)}\n# TYPE ${name} ${group[0].type}\n`;
    for (const s of group) {
      const labels = Object.entries(s.labels ?? {}).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      text += `${name}${labels.length ? `{${labels.join(',')}}` : ''} ${s.value}\n`;
    }
  }
  return text;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(text: string): string {
  return escapeHelp(text).replace(/"/g, '\\"');
}
