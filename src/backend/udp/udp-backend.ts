import { availableParallelism } from 'node:os';
import { KernelError, errorMessage, type DatapathFailedError } from '../../errors.js';
import { formatIpv4Net, parseIpv4 } from '../../ip/ipv4.js';
import { log } from '../../log.js';
import { configureTunLink } from '../../kernel/tun-link.js';
import { UdpDatapath, type UdpDatapathOptions } from '../../datapath/udp-datapath.js';
import type { DatapathCounters } from '../../datapath/datapath.js';
import type { Lease, LeaseEvent } from '../../subnet/lease.js';
import type { BackendDefinition, BackendNetwork, BackendOptions, MetricSample } from '../backend.js';
import { BackendOptionReader, UDP_PORT_RANGE } from '../backend-options.js';

export const UDP_DEFAULT_PORT = 8285;
/** IPv4 header + UDP header around each packet. */
export const UDP_OVERHEAD = 28;
export const TUN_NAME = 'flannel0';
export const MAX_QUEUES = 16;

/**
 * How many TUN queues to run when asked for `requested` (0: choose). Each queue costs two threads, one per
 * direction, so the choice is one queue per two CPUs: a single flow never uses more than one queue, and on a
 * two-CPU host a second queue would only add threads competing with the applications for the same CPUs.
 */
export function datapathQueues(requested: number, cpus: number): number {
  if (requested > 0) return Math.min(requested, MAX_QUEUES);
  return Math.max(1, Math.min(MAX_QUEUES, Math.floor(cpus / 2)));
}

/** The udp backend's network, with the engine's counters and failure typed for tests and tools that run it directly. */
export interface UdpNetwork extends BackendNetwork {
  counters(): DatapathCounters;
  /** undefined while the datapath runs; else why its packet threads stopped (e.g. flannel0 was deleted). */
  failure(): DatapathFailedError | undefined;
}

export interface UdpBackendConfig {
  /** UDP port of every host's datapath; flannel's `Backend.Port`, 0 meaning the default 8285. */
  readonly port: number;
}

/**
 * flannel's udp backend: IP packets from flannel0 travel unchanged as UDP payloads to port 8285 of the host
 * whose lease holds the destination. Peers that run flannel's own udp backend interoperate.
 */
export const udpBackend: BackendDefinition<UdpBackendConfig> = {
  type: 'udp',
  parseConfig: (options) => ({ port: udpPort(options) }),
  create: (ctx) => ({
    type: 'udp',
    // flannel's udp backend writes only PublicIP; BackendType lets `flanneld leases` show what a host runs.
    leaseAttrs: async () => ({ BackendType: 'udp' }),
    startNetwork: async (lease: Lease): Promise<UdpNetwork> => {
      const { port } = ctx.backendConfig;
      const { settings } = ctx;
      const mtu = ctx.extIface.mtu - UDP_OVERHEAD;
      const datapath = openDatapath({
        tunName: TUN_NAME,
        localIp: ctx.extIface.address,
        port,
        tunIp: lease.subnet.ip,
        mtu,
        antiSpoofing: settings.antiSpoofing,
        offload: settings.offload,
        queues: datapathQueues(settings.queues, availableParallelism()),
      });
      if (settings.offload && !(datapath.offloads.tun && datapath.offloads.udpGro)) {
        log.warn({ event: 'offloads-refused', offloads: datapath.offloads }, 'kernel refused some offloads; those paths run one packet per syscall');
      }
      try {
        await configureTunLink(datapath.tunName, { address: lease.subnet.ip, mtu, network: ctx.config.network });
      } catch (err) {
        datapath.close();
        throw err;
      }
      log.info({ event: 'network-running', tun: datapath.tunName, port, mtu, queues: datapath.queues, subnet: formatIpv4Net(lease.subnet), offloads: datapath.offloads }, 'udp datapath running');
      return {
        mtu,
        applyLeaseEvent: async (event: LeaseEvent) => applyLeaseEvent(datapath, port, event),
        failure: () => datapath.failure(),
        counters: () => datapath.counters(),
        metrics: () => datapathMetrics(datapath.counters()),
        // Closing the TUN fd removes flannel0 and every route through it.
        close: async () => datapath.close(),
      };
    },
  }),
};

/**
 * Opens the datapath, falling back to a single queue when several cannot be had: a kernel without multi-queue TUN
 * or reuseport steering, or a flannel0 an operator created beforehand as a single-queue device. Any other failure
 * (the port taken, no permission) would fail the same way with one queue, and is rethrown as it is.
 */
function openDatapath(opts: UdpDatapathOptions): UdpDatapath {
  try {
    return new UdpDatapath(opts);
  } catch (err) {
    if (opts.queues === 1 || !multiQueueUnavailable(err)) throw err;
    log.warn({ event: 'queues-fallback', queues: opts.queues, err: errorMessage(err) }, 'cannot open a multi-queue datapath; falling back to one queue');
    return new UdpDatapath({ ...opts, queues: 1 });
  }
}

/**
 * The errors that mean "not several queues here": TUNSETIFF says EINVAL when IFF_MULTI_QUEUE is unknown (before
 * Linux 3.8) or does not match an existing device; SO_REUSEPORT (3.9) and its steering program (4.5) are refused with
 * ENOPROTOOPT by kernels without them, and a program the kernel will not run with EINVAL or EOPNOTSUPP.
 */
function multiQueueUnavailable(err: unknown): boolean {
  if (!(err instanceof KernelError)) return false;
  switch (err.syscall) {
    case 'ioctl(TUNSETIFF)':
      return err.code === 'EINVAL';
    case 'setsockopt(SO_REUSEPORT)':
    case 'setsockopt(SO_ATTACH_REUSEPORT_CBPF)':
      return err.code === 'ENOPROTOOPT' || err.code === 'EOPNOTSUPP' || err.code === 'EINVAL';
    default:
      return false;
  }
}

function applyLeaseEvent(datapath: UdpDatapath, port: number, event: LeaseEvent): void {
  const { lease } = event;
  // Leases of other backends (vxlan, host-gw) do not speak our wire format; flannel's udp writes no BackendType.
  const isUdp = !lease.attrs.BackendType || lease.attrs.BackendType === 'udp';
  if (event.type === 'removed' || !isUdp) {
    datapath.deleteRoute(lease.subnet);
    return;
  }
  // Like flannel, peers are reached on our own configured port: a network agrees on one Backend.Port.
  datapath.setRoute({ subnet: lease.subnet, publicIp: parseIpv4(lease.attrs.PublicIP), port });
}

function udpPort(options: BackendOptions): number {
  const port = new BackendOptionReader(options).integer('Port', 0, UDP_PORT_RANGE);
  return port === 0 ? UDP_DEFAULT_PORT : port; // flannel treats 0 as "the default"
}

/** The engine's counters under the metric names operators already scrape. */
export function datapathMetrics(c: DatapathCounters): MetricSample[] {
  const counter = (name: string, help: string, labels: Record<string, string>, value: number): MetricSample => ({ name, help, type: 'counter', labels, value });
  const packets = 'Packets carried';
  const bytes = 'Bytes carried';
  const offload = 'TUN super packets split for the wire (gso_split) and received datagrams merged for the TUN (gro_merge)';
  const drops = 'Packets dropped, by reason';
  const queue = 'Datagrams sent (tx) and received (rx) on each TUN queue and its UDP socket';
  return [
    counter('flannel_datapath_packets_total', packets, { direction: 'tx' }, c.txPackets),
    counter('flannel_datapath_packets_total', packets, { direction: 'rx' }, c.rxPackets),
    counter('flannel_datapath_bytes_total', bytes, { direction: 'tx' }, c.txBytes),
    counter('flannel_datapath_bytes_total', bytes, { direction: 'rx' }, c.rxBytes),
    counter('flannel_datapath_offload_total', offload, { kind: 'gso_split' }, c.gsoSplits),
    counter('flannel_datapath_offload_total', offload, { kind: 'gro_merge' }, c.groMerges),
    ...Object.entries(c.drops).map(([reason, n]) => counter('flannel_datapath_drops_total', drops, { reason }, n)),
    counter('flannel_datapath_read_errors_total', 'Reads from the TUN or the UDP socket that failed without stopping the datapath', {}, c.readErrors),
    ...c.queues.flatMap((q, i) => [
      counter('flannel_datapath_queue_packets_total', queue, { queue: String(i), direction: 'tx' }, q.txPackets),
      counter('flannel_datapath_queue_packets_total', queue, { queue: String(i), direction: 'rx' }, q.rxPackets),
    ]),
  ];
}
