import { KernelError } from '../errors.js';
import { formatIpv4Net } from '../ip/ipv4.js';
import { watchLinkDeletion } from '../kernel/link-watch.js';
import { log } from '../log.js';
import type { Lease, LeaseEvent } from '../subnet/lease.js';
import { sample, type BackendNetwork, type MetricSample } from './backend.js';
import { PeerSync, type PeerDriver, type WantedPeer } from './peer-sync.js';

/** flannel re-checks host-gw routes this often (pkg/backend/route_network.go); vxlan entries get the same care. */
const REPAIR_INTERVAL_MS = 10_000;

/** What a peer lease asks of a backend, or why the backend cannot use it. */
export type PeerVerdict<W> = { readonly want: W } | { readonly ignore: string };

/**
 * A backend's translation of peer leases: a lease of another BackendType is ignored, as flannel ignores it (the hosts
 * of one Network must run one backend); the others go to `translate`.
 */
export function peersOfType<W>(backendType: string, translate: (lease: Lease) => PeerVerdict<W>): (lease: Lease) => PeerVerdict<W> {
  return (lease) => {
    const type = lease.attrs.BackendType;
    return type === backendType ? translate(lease) : { ignore: `its BackendType is ${JSON.stringify(type ?? null)}, not "${backendType}"` };
  };
}

export interface PeerNetworkOptions<W> {
  readonly mtu: number;
  readonly driver: PeerDriver<W>;
  /** What is programmed per peer, for log lines ("vxlan peers", "host-gw routes"). */
  readonly what: string;
  readonly translate: (lease: Lease) => PeerVerdict<W>;
  /** The device the network stands on (flannel.<VNI>, or the external interface for host-gw): its deletion is a failure. */
  readonly device: { readonly name: string; readonly index: number };
}

/**
 * A network carried entirely by the kernel (vxlan, host-gw): peer leases become kernel entries through a PeerSync,
 * which also adopts what a previous run left, removes what no lease claims once the daemon has given them all,
 * and repairs what goes missing. Closing leaves every entry in place, so traffic flows while flanneld restarts.
 */
export class PeerNetwork<W> implements BackendNetwork {
  readonly mtu: number;
  private readonly sync: PeerSync<W>;
  private readonly ignored = new Map<string, string>();
  private failed: Error | undefined;
  private readonly stopWatch: () => void;

  constructor(private readonly opts: PeerNetworkOptions<W>) {
    this.mtu = opts.mtu;
    this.sync = new PeerSync(opts.driver, opts.what);
    const { name, index } = opts.device;
    this.stopWatch = watchLinkDeletion(index, () => {
      this.failed = new KernelError(`${name} was deleted: ${opts.what} cannot be programmed until the network is set up again`);
      this.sync.stopRepairs();
      log.error({ event: 'network-failed', device: name }, this.failed.message);
    });
    this.sync.startRepairs(REPAIR_INTERVAL_MS);
  }

  async applyLeaseEvent(event: LeaseEvent): Promise<void> {
    const { lease } = event;
    if (event.type === 'removed') this.ignored.delete(formatIpv4Net(lease.subnet));
    await this.sync.set(lease.subnet, event.type === 'removed' ? undefined : this.wantOf(lease));
  }

  /** Every current peer, from the daemon: make the kernel hold exactly these, and nothing else of ours. */
  async reconcile(peers: readonly Lease[]): Promise<void> {
    const wanted: WantedPeer<W>[] = [];
    const current = new Set(peers.map((l) => formatIpv4Net(l.subnet)));
    for (const subnet of this.ignored.keys()) if (!current.has(subnet)) this.ignored.delete(subnet);
    for (const lease of peers) {
      const want = this.wantOf(lease);
      if (want !== undefined) wanted.push({ subnet: lease.subnet, want });
    }
    await this.sync.reconcile(wanted);
  }

  failure(): Error | undefined {
    return this.failed;
  }

  metrics(): readonly MetricSample[] {
    return [
      ...this.sync.metrics(),
      sample('gauge', 'flannel_backend_peers_ignored', 'Peer leases this backend cannot use (another backend type, bad BackendData)', {}, this.ignored.size),
    ];
  }

  async close(): Promise<void> {
    this.stopWatch();
    await this.sync.close();
  }

  /** The translation of a lease, logging once each time a subnet starts being ignored (or for another reason). */
  private wantOf(lease: Lease): W | undefined {
    const subnet = formatIpv4Net(lease.subnet);
    const verdict = this.opts.translate(lease);
    if ('want' in verdict) {
      this.ignored.delete(subnet);
      return verdict.want;
    }
    if (this.ignored.get(subnet) !== verdict.ignore) {
      this.ignored.set(subnet, verdict.ignore);
      log.warn({ event: 'peer-ignored', subnet, publicIp: lease.attrs.PublicIP, backendType: lease.attrs.BackendType ?? null }, `ignoring peer lease ${subnet}: ${verdict.ignore}`);
    }
    return undefined;
  }
}
