import { isJsonObject } from '../../config/go-json.js';
import type { LeaseAttrs } from '../../subnet/lease.js';

/**
 * What a lease says about its host: flannel-ts with the fast path publishes `BackendData: {"FastPath": true}`, and
 * only such peers are sent what the kernel hands the fast path as is (TCP super packets, unfinished checksums),
 * which only a kernel that decapsulates can take on a link without a wire (veth). flannel's udp backend writes no
 * BackendData and ignores ours.
 */
export const FAST_PATH_LEASE_DATA = { FastPath: true } as const;

export function leaseRunsFastPath(attrs: LeaseAttrs): boolean {
  const data = attrs.BackendData;
  return isJsonObject(data) && data.FastPath === true;
}
