import { availableParallelism } from 'node:os';
import { KernelError, errorMessage, type DatapathFailedError } from '../../errors.js';
import { formatIpv4Net, parseIpv4 } from '../../ip/ipv4.js';
import { log } from '../../log.js';
import { withNetlink } from '../../kernel/netlink.js';
import { configureTunLink } from '../../kernel/tun-link.js';
import { UdpDatapath, type UdpDatapathOptions } from '../../datapath/udp-datapath.js';
import type { DatapathCounters, PeerRoute } from '../../datapath/datapath.js';
import { UdpFastPath, type FastPathCounters } from '../../datapath/udp-fastpath.js';
import { MAX_QUEUES } from '../../datapath/native.js';
import type { Lease, LeaseEvent } from '../../subnet/lease.js';
import { counter, type BackendContext, type BackendDefinition, type BackendNetwork, type BackendOptions, type MetricSample } from '../backend.js';
import { BackendOptionReader, UDP_PORT_RANGE } from '../backend-options.js';
import { FastPathChoice } from './fastpath-choice.js';
import { FAST_PATH_LEASE_DATA, leaseRunsFastPath } from './fastpath-lease.js';

const UDP_DEFAULT_PORT = 8285;
/** IPv4 header + UDP header around each packet. */
const UDP_OVERHEAD = 28;
const TUN_NAME = 'flannel0';

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
  /** The fast path's counters; undefined when it does not run. */
  fastPathCounters(): FastPathCounters | undefined;
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
  create: (ctx) => {
    const fastPathChoice = new FastPathChoice(ctx.settings.udpFastpath, ctx.settings.udpFastpathLoad);
    return {
      type: 'udp',
      // flannel's udp backend writes only PublicIP; BackendType lets `flanneld leases` show what a host runs, and
      // BackendData tells peers that this host decapsulates in its kernel (flannel ignores it).
      leaseAttrs: async () => (fastPathChoice.runs() ? { BackendType: 'udp', BackendData: FAST_PATH_LEASE_DATA } : { BackendType: 'udp' }),
      startNetwork: (lease: Lease) => startNetwork(ctx, lease, fastPathChoice),
    };
  },
  // flannel0 and its route go away with the engine's TUN; what can outlive the process are the fast path's clsact
  // filters (kernels before 6.6), left by a crash on the external interface. They are known by handle, not by
  // Network, so they are looked for on every interface.
  teardown: async () => {
    const indexes = await withNetlink('listing interfaces', async (nl) => (await nl.getLinks()).map((l) => l.data.index ?? 0));
    const filters = indexes.reduce((n, index) => n + UdpFastPath.removeLeftovers(index), 0);
    log.info({ event: 'teardown', backend: 'udp', filters }, `removed ${filters} udp fast path filter(s)`);
  },
};

async function startNetwork(ctx: BackendContext<UdpBackendConfig>, lease: Lease, fastPathChoice: FastPathChoice): Promise<UdpNetwork> {
  const { port } = ctx.backendConfig;
  const { settings, extIface } = ctx;
  const mtu = extIface.mtu - UDP_OVERHEAD;
  // A flanneld that crashed with the fast path attached as clsact filters (kernels before 6.6) left them redirecting
  // into a flannel0 that is gone; whatever runs now, the engine must get its datagrams.
  UdpFastPath.removeLeftovers(extIface.index);
  const datapath = openDatapath({
    tunName: TUN_NAME,
    localIp: extIface.address,
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
  let fastPath: UdpFastPath | undefined;
  try {
    const tunIfindex = await configureTunLink(datapath.tunName, { address: lease.subnet.ip, mtu, network: ctx.config.network });
    // Our lease already tells peers that we decapsulate in the kernel: failing here is an error even in auto mode.
    fastPath = fastPathChoice.take();
    if (fastPath) {
      UdpFastPath.removeLeftovers(tunIfindex);
      fastPath.start({ extIfindex: extIface.index, tunIfindex, localIp: extIface.address, port, antiSpoofing: settings.antiSpoofing });
    }
  } catch (err) {
    fastPath?.close();
    datapath.close();
    throw err;
  }
  log.info(
    { event: 'network-running', tun: datapath.tunName, port, mtu, queues: datapath.queues, subnet: formatIpv4Net(lease.subnet), offloads: datapath.offloads, fastPath: fastPath?.attachMode ?? 'off' },
    fastPath ? `udp datapath running, with the fast path in the kernel (${fastPath.attachMode})` : 'udp datapath running',
  );
  return {
    mtu,
    applyLeaseEvent: async (event: LeaseEvent) => {
      const route = peerRoute(event, port);
      if (route) {
        datapath.setRoute(route);
        fastPath?.setRoute(route, leaseRunsFastPath(event.lease.attrs));
      } else {
        datapath.deleteRoute(event.lease.subnet);
        fastPath?.deleteRoute(event.lease.subnet);
      }
    },
    failure: () => datapath.failure(),
    counters: () => datapath.counters(),
    fastPathCounters: () => fastPath?.counters(),
    metrics: () => [...datapathMetrics(datapath.counters()), ...fastPathMetrics(fastPath?.counters())],
    // Detaching first: until then the programs keep redirecting into flannel0. Closing the TUN fd removes flannel0
    // and every route through it.
    close: async () => {
      fastPath?.close();
      datapath.close();
    },
  };
}

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

/** Where a peer lease sends packets, or undefined when it must not be routed (removed, or another backend's). */
function peerRoute(event: LeaseEvent, port: number): PeerRoute | undefined {
  const { lease } = event;
  // Leases of other backends (vxlan, host-gw) do not speak our wire format; flannel's udp writes no BackendType.
  const isUdp = !lease.attrs.BackendType || lease.attrs.BackendType === 'udp';
  if (event.type === 'removed' || !isUdp) return undefined;
  // Like flannel, peers are reached on our own configured port: a network agrees on one Backend.Port.
  return { subnet: lease.subnet, publicIp: parseIpv4(lease.attrs.PublicIP), port };
}

function udpPort(options: BackendOptions): number {
  const port = new BackendOptionReader(options).integer('Port', 0, UDP_PORT_RANGE);
  return port === 0 ? UDP_DEFAULT_PORT : port; // flannel treats 0 as "the default"
}

/** One counter per direction: `direction="tx"` then `direction="rx"`, beside any other labels. */
function txRx(name: string, help: string, tx: number, rx: number, labels: Record<string, string> = {}): MetricSample[] {
  return [counter(name, help, { ...labels, direction: 'tx' }, tx), counter(name, help, { ...labels, direction: 'rx' }, rx)];
}

/** The engine's counters under the metric names operators already scrape. */
function datapathMetrics(c: DatapathCounters): MetricSample[] {
  const packets = 'Packets carried';
  const bytes = 'Bytes carried';
  const offload = 'TUN super packets split for the wire (gso_split) and received datagrams merged for the TUN (gro_merge)';
  const drops = 'Packets dropped, by reason';
  const queue = 'Datagrams sent (tx) and received (rx) on each TUN queue and its UDP socket';
  return [
    ...txRx('flannel_datapath_packets_total', packets, c.txPackets, c.rxPackets),
    ...txRx('flannel_datapath_bytes_total', bytes, c.txBytes, c.rxBytes),
    counter('flannel_datapath_offload_total', offload, { kind: 'gso_split' }, c.gsoSplits),
    counter('flannel_datapath_offload_total', offload, { kind: 'gro_merge' }, c.groMerges),
    ...Object.entries(c.drops).map(([reason, n]) => counter('flannel_datapath_drops_total', drops, { reason }, n)),
    counter('flannel_datapath_read_errors_total', 'Reads from the TUN or the UDP socket that failed without stopping the datapath', {}, c.readErrors),
    ...c.queues.flatMap((q, i) => txRx('flannel_datapath_queue_packets_total', queue, q.txPackets, q.rxPackets, { queue: String(i) })),
  ];
}

/** The fast path's counters beside the engine's; `flannel_fastpath_enabled` says whether it runs at all. */
export function fastPathMetrics(c: FastPathCounters | undefined): MetricSample[] {
  const enabled: MetricSample = { name: 'flannel_fastpath_enabled', help: 'Whether the udp fast path runs in the kernel (1) or the engine carries everything (0)', type: 'gauge', value: c ? 1 : 0 };
  if (!c) return [enabled];
  const packets = 'Datagrams carried by the fast path in the kernel (a super packet counts its segments)';
  const bytes = 'Inner IPv4 bytes carried by the fast path in the kernel';
  const whole = 'TCP super packets the fast path carried whole, not cut into datagrams on this host';
  const drops = 'Packets the fast path dropped, by reason';
  const passed = 'Packets the fast path left to the engine, by reason';
  return [
    enabled,
    ...txRx('flannel_fastpath_packets_total', packets, c.txPackets, c.rxPackets),
    ...txRx('flannel_fastpath_bytes_total', bytes, c.txBytes, c.rxBytes),
    ...txRx('flannel_fastpath_super_packets_total', whole, c.txSuperPackets, c.rxSuperPackets),
    ...Object.entries(c.drops).map(([reason, n]) => counter('flannel_fastpath_drops_total', drops, { reason }, n)),
    ...Object.entries(c.passed).map(([reason, n]) => counter('flannel_fastpath_passed_total', passed, { reason }, n)),
  ];
}
