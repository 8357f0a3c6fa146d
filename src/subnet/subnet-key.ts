import { isIPv6 } from 'node:net';
import { isJsonObject } from '../config/go-json.js';
import { formatIpv4, makeNet, parseIpv4, type Ipv4Net } from '../ip/ipv4.js';
import type { LeaseAttrs } from './lease.js';

/** What a key under `<prefix>/subnets/` names: an IPv4 subnet, and the IPv6 one of a flannel dual-stack lease. */
export interface SubnetKeyParts {
  readonly subnet: Ipv4Net;
  /** `fc00::/64` as written in the key; flannel-ts routes only the IPv4 part but must name the key exactly. */
  readonly ipv6Subnet?: string;
}

/**
 * `198.19.5.0/24` → `198.19.5.0-24`, flannel's key name under `<prefix>/subnets/`; with an IPv6 subnet,
 * flannel's dual-stack form `198.19.5.0-24&fc00::-64`.
 */
export function subnetKey(subnet: Ipv4Net, ipv6Subnet?: string): string {
  const v4 = `${formatIpv4(subnet.ip)}-${subnet.prefixLen}`;
  return ipv6Subnet ? `${v4}&${ipv6Subnet.replace('/', '-')}` : v4;
}

/** The key of a lease (or a delete event), dual-stack part included. */
export function keyOf(parts: SubnetKeyParts): string {
  return subnetKey(parts.subnet, parts.ipv6Subnet);
}

/**
 * The inverse of subnetKey, accepting what flannel's key regex accepts (pkg/subnet ParseSubnetKey): an IPv4
 * network address and prefix, optionally `&` an IPv6 one. Undefined for names that are not subnet keys.
 */
export function parseSubnetKey(name: string): SubnetKeyParts | undefined {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})(?:&([a-f\d:]+)-(\d{1,3}))?$/.exec(name);
  if (!match || Number(match[2]) > 32) return undefined;
  const [, v4, v4Len, v6, v6Len] = match;
  if (v6 !== undefined && (!isIPv6(v6) || Number(v6Len) > 128)) return undefined;
  try {
    const net = makeNet(parseIpv4(v4), Number(v4Len));
    if (net.ip !== parseIpv4(v4)) return undefined;
    return v6 === undefined ? { subnet: net } : { subnet: net, ipv6Subnet: `${v6}/${v6Len}` };
  } catch {
    return undefined;
  }
}

/**
 * Parses a lease value written by flannel or flannel-ts. Only PublicIP is required: flannel's udp backend
 * writes nothing else. Anything else (not JSON, no IPv4 PublicIP) is rejected so one bad key never stops us.
 */
export function parseLeaseValue(text: string): LeaseAttrs | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isJsonObject(value)) return undefined;
  const attrs = value;
  if (typeof attrs.PublicIP !== 'string') return undefined;
  try {
    parseIpv4(attrs.PublicIP);
  } catch {
    return undefined;
  }
  if (attrs.BackendType !== undefined && typeof attrs.BackendType !== 'string') return undefined;
  return attrs as unknown as LeaseAttrs;
}
