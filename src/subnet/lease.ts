import type { Ipv4Net } from '../ip/ipv4.js';

/**
 * The JSON value stored at `<prefix>/subnets/<a.b.c.d>-<len>`, field names as flannel writes them.
 * flannel's own udp backend writes only PublicIP (and PublicIPv6: null on newer releases); we accept that.
 */
export interface LeaseAttrs {
  PublicIP: string;
  PublicIPv6?: string | null;
  BackendType?: string;
  BackendData?: unknown;
}

export interface Lease {
  readonly subnet: Ipv4Net;
  /** The IPv6 half of a flannel dual-stack key (`198.19.5.0-24&fc00::-64`); its IPv4 subnet is taken all the same. */
  readonly ipv6Subnet?: string;
  readonly attrs: LeaseAttrs;
  /** Absent for reservations (keys written without an etcd lease). */
  readonly expiration?: Date;
  /** The etcd lease the key is attached to; absent for reservations, which must stay TTL-less when reused. */
  readonly leaseId?: string;
}

/** A lease as read from etcd: with the revision that last wrote its key, which a rewrite must find unchanged. */
export interface StoredLease extends Lease {
  readonly modRevision: string;
}

/** What the peer watch publishes to backends. `changed` carries the new lease. */
export type LeaseEvent =
  | { readonly type: 'added'; readonly lease: Lease }
  | { readonly type: 'changed'; readonly lease: Lease; readonly previous: Lease }
  | { readonly type: 'removed'; readonly lease: Lease };
