import { Address4 } from 'ip-address';

/** An IPv4 address as an unsigned 32-bit integer: cheap to compare, mask and step through. */
export type Ipv4 = number;

/** An IPv4 network: `ip` is always masked to `prefixLen`. */
export interface Ipv4Net {
  readonly ip: Ipv4;
  readonly prefixLen: number;
}

export function parseIpv4(text: string): Ipv4 {
  if (!Address4.isValid(text) || text.includes('/')) throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return new Address4(text).toArray().reduce((acc, octet) => acc * 256 + octet, 0) >>> 0;
}

export function formatIpv4(ip: Ipv4): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

export function makeNet(ip: Ipv4, prefixLen: number): Ipv4Net {
  return { ip: (ip & maskOf(prefixLen)) >>> 0, prefixLen };
}

/** Parses `a.b.c.d/n`; the address is masked like Go's net.ParseCIDR, so 198.19.1.7/16 is 198.19.0.0/16. */
export function parseIpv4Net(text: string): Ipv4Net {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  if (!match || Number(match[2]) > 32) throw new RangeError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  return makeNet(parseIpv4(match[1]), Number(match[2]));
}

export function formatIpv4Net(net: Ipv4Net): string {
  return `${formatIpv4(net.ip)}/${net.prefixLen}`;
}

function netSize(net: Ipv4Net): number {
  return 2 ** (32 - net.prefixLen);
}

export function netContains(net: Ipv4Net, ip: Ipv4): boolean {
  return ((ip & maskOf(net.prefixLen)) >>> 0) === net.ip;
}

export function netsOverlap(a: Ipv4Net, b: Ipv4Net): boolean {
  const shorter = Math.min(a.prefixLen, b.prefixLen);
  return ((a.ip & maskOf(shorter)) >>> 0) === ((b.ip & maskOf(shorter)) >>> 0);
}

export function netEquals(a: Ipv4Net, b: Ipv4Net): boolean {
  return a.ip === b.ip && a.prefixLen === b.prefixLen;
}

/** Last address of the network (its broadcast address). */
export function netLast(net: Ipv4Net): Ipv4 {
  return (net.ip + netSize(net) - 1) >>> 0;
}
