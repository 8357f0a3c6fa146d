import { formatIpv4, parseIpv4 } from '../../src/ip/ipv4.js';
import type { Testbed } from '../../testbed/netns.js';
import { checksum, sum16 } from '../../testbed/packets.js';

export { checksum, icmpEcho, ipv4Packet, sum16, type Ipv4PacketOptions } from '../../testbed/packets.js';

/**
 * What a test checks of an ICMP echo reply received as a flannel datagram, read independently of the addon: one
 * IPv4 packet with nothing around it (`firstByte` 0x45, total length = datagram length), valid checksums.
 */
export function readEchoReply(packet: Buffer) {
  const icmp = packet.subarray(20);
  return {
    firstByte: packet[0],
    lengthIsDatagram: packet.readUInt16BE(2) === packet.length,
    headerChecksumOk: checksum(packet.subarray(0, 20)) === 0,
    ttl: packet[8],
    src: formatIpv4(packet.readUInt32BE(12)),
    dst: formatIpv4(packet.readUInt32BE(16)),
    icmpType: icmp[0],
    id: icmp.readUInt16BE(4),
    seq: icmp.readUInt16BE(6),
    data: icmp.subarray(8).toString(),
    icmpChecksumOk: checksum(icmp) === 0,
  };
}

/** What readEchoReply gives for a well-formed echo reply in flannel's wire format with these fields. */
export function flannelEchoReply(f: { ttl: number; src: string; dst: string; id: number; seq: number; data: string }): ReturnType<typeof readEchoReply> {
  return { firstByte: 0x45, lengthIsDatagram: true, headerChecksumOk: true, icmpType: 0, icmpChecksumOk: true, ...f };
}

/** Broken copies of a well-formed packet, each with the drop reason the engine gives it. */
export function malformedCopies(good: Buffer): [Buffer, string][] {
  const notIpv4 = Buffer.from(good);
  notIpv4[0] = 0x65;
  const badIhl = Buffer.from(good);
  badIhl[0] = 0x44;
  const longerThanItIs = Buffer.from(good);
  longerThanItIs.writeUInt16BE(good.length + 40, 2);
  return [
    [good.subarray(0, 12), 'truncated'],
    [notIpv4, 'not_ipv4'],
    [badIhl, 'bad_header_length'],
    [longerThanItIs, 'truncated'],
  ];
}

function pseudo(ip: Buffer, protocol: number, length: number): number {
  return sum16(ip.subarray(12, 20)) + protocol + length;
}

/** Independent check of a segment's TCP/UDP checksum: 0 when valid. */
export function transportChecksum(p: Buffer): number {
  const ihl = (p[0] & 15) * 4;
  return checksum(p.subarray(ihl), pseudo(p, p[9], p.length - ihl));
}

export const FIN = 1, PSH = 8, ACK = 16, CWR = 128;

/**
 * A TCP super packet from 198.19.1.2 to 198.19.2.3 as the kernel hands it to a TUN with offloads on: NEEDS_CSUM
 * (the checksum field holds the pseudo-header sum) and a virtio_net_hdr (`hdr`) asking for segments that fit `mtu`.
 */
export function tcpSuperPacket(opts: { payload: Buffer; ipOptions?: Buffer; flags?: number; seq?: number; id?: number; mtu?: number }) {
  const ipOptions = opts.ipOptions ?? Buffer.alloc(0);
  const ihl = 20 + ipOptions.length;
  // Timestamps option (kind 8) padded with two NOPs: a 32-byte TCP header, as Linux sends.
  const tcpOptions = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
  const thl = 20 + tcpOptions.length;
  const p = Buffer.alloc(ihl + thl + opts.payload.length);
  p[0] = 0x40 | (ihl / 4);
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(opts.id ?? 1000, 4);
  p.writeUInt16BE(0x4000, 6); // DF
  p[8] = 64;
  p[9] = 6;
  p.writeUInt32BE(parseIpv4('198.19.1.2'), 12);
  p.writeUInt32BE(parseIpv4('198.19.2.3'), 16);
  ipOptions.copy(p, 20);
  p.writeUInt16BE(checksum(p.subarray(0, ihl)), 10);
  const t = p.subarray(ihl);
  t.writeUInt16BE(40000, 0);
  t.writeUInt16BE(5001, 2);
  t.writeUInt32BE(opts.seq ?? 0xfffff000, 4); // near wrap-around on purpose
  t.writeUInt32BE(77, 8);
  t[12] = (thl / 4) << 4;
  t[13] = opts.flags ?? ACK | PSH;
  t.writeUInt16BE(65535, 14);
  tcpOptions.copy(t, 20);
  opts.payload.copy(t, thl);
  // As the kernel hands it over with NEEDS_CSUM: the field holds the pseudo-header sum.
  t.writeUInt16BE(sum16(Buffer.alloc(0), pseudo(p, 6, p.length - ihl)), 16);
  const mss = (opts.mtu ?? 1472) - ihl - thl;
  const hdr = Buffer.alloc(10);
  hdr[0] = 1; // NEEDS_CSUM
  hdr[1] = 1; // GSO_TCPV4
  hdr.writeUInt16LE(ihl + thl, 2);
  hdr.writeUInt16LE(mss, 4);
  hdr.writeUInt16LE(ihl, 6);
  hdr.writeUInt16LE(16, 8);
  return { packet: p, hdr, ihl, thl, mss };
}

/** The TCP payload of an IPv4 packet. */
export function payloadOf(p: Buffer): Buffer {
  const ihl = (p[0] & 15) * 4;
  return p.subarray(ihl + (p[ihl + 12] >> 4) * 4, p.readUInt16BE(2));
}

/** n bytes of a fixed, non-repeating-looking pattern. */
export function pattern(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 255));
}

const PEER_SCRIPT = new URL('../fixtures/flannel-udp-peer.mjs', import.meta.url).pathname;

/**
 * Plays a flannel udp peer from namespace `ns`: sends raw IPv4 packets as datagrams from bindIp:port to
 * target:port (flannel's wire format) and returns what came back within waitMs.
 */
export async function sendAsPeer(
  bed: Testbed,
  ns: string,
  bindIp: string,
  target: string,
  packets: Buffer[],
  { port = 8285, waitMs = 1500 }: { port?: number; waitMs?: number } = {},
): Promise<{ from: string; packet: Buffer }[]> {
  const argv = [process.execPath, PEER_SCRIPT, bindIp, String(port), target, String(waitMs), ...packets.map((p) => p.toString('hex'))];
  const { stdout } = await bed.exec(ns, argv);
  return (JSON.parse(stdout) as { from: string; hex: string }[]).map((r) => ({ from: r.from, packet: Buffer.from(r.hex, 'hex') }));
}
