import { parseIpv4 } from '../src/ip/ipv4.js';

// Hand-built packets for tests and fault scenarios, computed independently of the addon.

/** RFC 1071 ones'-complement sum of 16-bit big-endian words, folded (computed independently of the addon). */
export function sum16(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum; 0 when computed over data that already carries a valid one. */
export function checksum(buf: Buffer, initial = 0): number {
  return ~sum16(buf, initial) & 0xffff;
}

export interface Ipv4PacketOptions {
  readonly src: string;
  readonly dst: string;
  readonly payload?: Buffer;
  readonly protocol?: number;
  readonly ttl?: number;
  readonly options?: Buffer;
  /** The 16-bit flags + fragment offset field (0x4000 = DF). */
  readonly flagsFragment?: number;
}

/** A hand-built IPv4 packet with a valid header checksum; the default payload is an ICMP echo request. */
export function ipv4Packet(o: Ipv4PacketOptions): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  const payload = o.payload ?? icmpEcho(0, 0, '');
  const hl = 20 + options.length;
  const p = Buffer.alloc(hl + payload.length);
  p[0] = 0x40 | (hl / 4);
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(o.flagsFragment ?? 0, 6);
  p[8] = o.ttl ?? 64;
  p[9] = o.protocol ?? 1;
  p.writeUInt32BE(parseIpv4(o.src), 12);
  p.writeUInt32BE(parseIpv4(o.dst), 16);
  options.copy(p, 20);
  p.writeUInt16BE(checksum(p.subarray(0, hl)), 10);
  payload.copy(p, hl);
  return p;
}

export function icmpEcho(id: number, seq: number, data: string): Buffer {
  const m = Buffer.concat([Buffer.from([8, 0, 0, 0, id >> 8, id & 255, seq >> 8, seq & 255]), Buffer.from(data)]);
  m.writeUInt16BE(checksum(m), 2);
  return m;
}

/** A tiny deterministic PRNG (mulberry32), so that a failing mix of packets can be replayed from its seed. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
