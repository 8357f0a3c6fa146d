import { formatIpv4, makeNet, parseIpv4, type Ipv4Net } from '../ip/ipv4.js';
import type { LeaseAttrs } from './lease.js';

/** `198.19.5.0/24` → `198.19.5.0-24`, flannel's key name under `<prefix>/subnets/`. */
export function subnetKey(subnet: Ipv4Net): string {
  return `${formatIpv4(subnet.ip)}-${subnet.prefixLen}`;
}

/** The inverse of subnetKey; undefined for names that are not subnet keys (including dual-stack ones). */
export function parseSubnetKey(name: string): Ipv4Net | undefined {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})$/.exec(name);
  if (!match || Number(match[2]) > 32) return undefined;
  try {
    const net = makeNet(parseIpv4(match[1]), Number(match[2]));
    return net.ip === parseIpv4(match[1]) ? net : undefined;
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
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const attrs = value as Record<string, unknown>;
  if (typeof attrs.PublicIP !== 'string') return undefined;
  try {
    parseIpv4(attrs.PublicIP);
  } catch {
    return undefined;
  }
  if (attrs.BackendType !== undefined && typeof attrs.BackendType !== 'string') return undefined;
  return attrs as unknown as LeaseAttrs;
}
