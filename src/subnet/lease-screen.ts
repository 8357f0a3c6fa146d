import { formatIpv4Net, netContains, netEquals, netLast, type Ipv4Net } from '../ip/ipv4.js';
import type { Lease } from './lease.js';
import { keyOf, subnetKey } from './subnet-key.js';

/** Why a peer lease is not routed: it lies (partly) outside Network, or it overlaps another lease or ours. */
export type IgnoreReason = 'outside_network' | 'overlap';

export interface IgnoredLease {
  readonly lease: Lease;
  readonly reason: IgnoreReason;
  /** The other lease's key (for an overlap), or the network (outside). */
  readonly conflict: string;
}

export interface Screened {
  /** Peer leases that are safe to route. */
  readonly routable: Lease[];
  readonly ignored: IgnoredLease[];
}

/**
 * Sorts peer leases into those a backend may route and those it must not: a lease outside Network would pull
 * foreign traffic into the overlay, and of two overlapping leases at most one is right, so neither is trusted (an
 * overlap with our own subnet would steal our containers' traffic). Leases carrying our PublicIP are ours, not peers.
 */
export function screenLeases(leases: readonly Lease[], network: Ipv4Net, own: { subnet?: Ipv4Net; publicIp: string }): Screened {
  const ignored = new Map<Lease, IgnoredLease>();
  const ignore = (lease: Lease, reason: IgnoreReason, conflict: string) => {
    if (lease.attrs.PublicIP !== own.publicIp && !ignored.has(lease)) ignored.set(lease, { lease, reason, conflict });
  };
  for (const lease of leases) {
    if (lease.subnet.prefixLen < network.prefixLen || !netContains(network, lease.subnet.ip)) {
      ignore(lease, 'outside_network', formatIpv4Net(network));
    }
  }
  // One sweep in address order: a range that starts before the furthest end seen so far overlaps its owner.
  const ranges = leases.map((lease) => ({ lease, key: keyOf(lease), start: lease.subnet.ip, end: netLast(lease.subnet) }));
  const ownHeldAsLease = own.subnet && leases.some((l) => l.attrs.PublicIP === own.publicIp && netEquals(l.subnet, own.subnet!));
  if (own.subnet && !ownHeldAsLease) {
    const lease: Lease = { subnet: own.subnet, attrs: { PublicIP: own.publicIp } };
    ranges.push({ lease, key: subnetKey(own.subnet), start: own.subnet.ip, end: netLast(own.subnet) });
  }
  ranges.sort((a, b) => a.start - b.start || a.end - b.end);
  let widest: (typeof ranges)[number] | undefined;
  for (const range of ranges) {
    if (widest && range.start <= widest.end) {
      ignore(range.lease, 'overlap', widest.key);
      ignore(widest.lease, 'overlap', range.key);
    }
    if (!widest || range.end > widest.end) widest = range;
  }
  const routable = leases.filter((l) => l.attrs.PublicIP !== own.publicIp && !ignored.has(l));
  return { routable, ignored: [...ignored.values()] };
}
