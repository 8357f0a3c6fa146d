import { describe, expect, it } from 'vitest';
import { loadNativeAddon, type NativeTestRoute } from '../../src/datapath/native.js';
import { parseIpv4 } from '../../src/ip/ipv4.js';
import { checksum, icmpEcho, ipv4Packet, payloadOf, pattern, tcpSuperPacket, transportChecksum } from '../helpers/packets.js';

// The engine's forwarding decisions (native/forward.h), called on hand-built packets with a given route table:
// everything the packet threads decide, without a TUN or a socket.
const { _test: native } = loadNativeAddon();
const MTU = 1472;
const TUN_IP = parseIpv4('198.19.1.0');

const route = (subnet: string, peerIp: string, peerPort = 8285): NativeTestRoute => {
  const [ip, len] = subnet.split('/');
  return { subnet: parseIpv4(ip), prefixLen: Number(len), peerIp: parseIpv4(peerIp), peerPort };
};
// A /16 to one peer with a more specific /24 inside it to another, and a third peer elsewhere.
const ROUTES = [route('198.19.0.0/16', '198.18.0.16'), route('198.19.2.0/24', '198.18.0.2', 18285), route('198.19.3.0/24', '198.18.0.3')];

const packet = (src: string, dst: string, ttl = 64, payload = icmpEcho(1, 1, 'flannel')) => ipv4Packet({ src, dst, ttl, payload, flagsFragment: 0x4000 });
const egress = (p: Buffer, vnetHdr?: Buffer) => native.egress(p, ROUTES, { tunIp: TUN_IP, mtu: MTU, ...(vnetHdr ? { vnetHdr } : {}) });

describe('egress: a packet read from the TUN', () => {
  it('goes unchanged but for TTL - 1 (checksum still valid) to the peer of the longest matching prefix', () => {
    const p = packet('198.19.1.2', '198.19.2.3');
    const d = egress(p);
    expect(d).toMatchObject({ peerIp: parseIpv4('198.18.0.2'), peerPort: 18285, split: false });
    if (d.drop !== undefined) throw new Error(d.drop);
    expect(d.datagrams).toHaveLength(1);
    const out = d.datagrams[0];
    expect(out[8]).toBe(63);
    expect(checksum(out.subarray(0, 20))).toBe(0);
    expect(Buffer.concat([out.subarray(0, 8), out.subarray(12)]).equals(Buffer.concat([p.subarray(0, 8), p.subarray(12)]))).toBe(true);
    expect(egress(packet('198.19.77.3', '198.19.200.9'))).toMatchObject({ peerIp: parseIpv4('198.18.0.16'), peerPort: 8285 });
    expect(egress(packet('198.19.1.2', '198.19.3.1'))).toMatchObject({ peerIp: parseIpv4('198.18.0.3') });
  });

  it('to a subnet no lease holds: dropped as no_route, with an ICMP net unreachable from the TUN address', () => {
    const p = packet('198.19.1.2', '198.20.0.1');
    const d = egress(p);
    expect(d.drop).toBe('no_route');
    const icmp = (d as { icmp?: Buffer }).icmp!;
    expect(icmp.readUInt32BE(12)).toBe(TUN_IP);
    expect(icmp.readUInt32BE(16)).toBe(parseIpv4('198.19.1.2'));
    expect([icmp[9], icmp[20], icmp[21]]).toEqual([1, 3, 0]);
    expect(icmp.subarray(28).equals(p.subarray(0, 28))).toBe(true);
    // An ICMP error is never answered with another.
    const unreachable = packet('198.19.1.2', '198.20.0.1', 64, Buffer.from('0301fcfe00000000', 'hex'));
    expect(egress(unreachable)).toEqual({ drop: 'no_route' });
  });

  it('with TTL 1 is dropped as ttl_exceeded; empty, truncated and non-IPv4 reads by their reason', () => {
    expect(egress(packet('198.19.1.2', '198.19.2.3', 1))).toEqual({ drop: 'ttl_exceeded' });
    const p = packet('198.19.1.2', '198.19.2.3');
    expect(egress(Buffer.alloc(0))).toEqual({ drop: 'empty' });
    expect(egress(p.subarray(0, 19))).toEqual({ drop: 'truncated' });
    const v6 = Buffer.from(p);
    v6[0] = 0x60;
    expect(egress(v6)).toEqual({ drop: 'not_ipv4' });
  });

  it('a TCP super packet is cut into MTU-sized datagrams whose payloads rebuild the original', () => {
    const payload = pattern(10_000);
    const sp = tcpSuperPacket({ payload, mtu: MTU });
    const d = egress(sp.packet, sp.hdr);
    if (d.drop !== undefined) throw new Error(d.drop);
    expect(d).toMatchObject({ peerIp: parseIpv4('198.18.0.2'), split: true });
    expect(d.datagrams).toHaveLength(Math.ceil(payload.length / sp.mss));
    for (const s of d.datagrams) {
      expect(s.length).toBeLessThanOrEqual(MTU);
      expect(s[8]).toBe(63);
      expect(checksum(s.subarray(0, sp.ihl))).toBe(0);
      expect(transportChecksum(s)).toBe(0);
    }
    expect(Buffer.concat(d.datagrams.map(payloadOf)).equals(payload)).toBe(true);
  });

  it('a single packet with a partial checksum (NEEDS_CSUM) leaves complete; a super packet that is not TCP is bad_gso', () => {
    const sp = tcpSuperPacket({ payload: pattern(500), mtu: MTU });
    const hdr = Buffer.from(sp.hdr);
    hdr[1] = 0; // no GSO, only the checksum to finish
    const d = egress(sp.packet, hdr);
    if (d.drop !== undefined) throw new Error(d.drop);
    expect(d.datagrams).toHaveLength(1);
    expect(transportChecksum(d.datagrams[0])).toBe(0);
    const udp = Buffer.from(sp.packet);
    udp[9] = 17;
    udp.writeUInt16BE(0, 10);
    udp.writeUInt16BE(checksum(udp.subarray(0, 20)), 10);
    expect(egress(udp, sp.hdr)).toEqual({ drop: 'bad_gso' });
  });
});

describe('ingress: a datagram from a peer', () => {
  const ingress = (p: Buffer, sender: string, antiSpoofing = true) => native.ingress(p, parseIpv4(sender), ROUTES, antiSpoofing);

  it('from the host whose lease holds its source goes into the TUN with TTL - 1, without trailing bytes', () => {
    const p = packet('198.19.2.3', '198.19.1.2');
    const d = ingress(Buffer.concat([p, Buffer.from('trailing')]), '198.18.0.2');
    if (d.drop !== undefined) throw new Error(d.drop);
    expect(d.packet.length).toBe(p.length);
    expect(d.packet[8]).toBe(63);
    expect(checksum(d.packet.subarray(0, 20))).toBe(0);
  });

  it('claiming a source of another lease is spoofed_source, of no lease unknown_source; both pass with anti-spoofing off', () => {
    const fromH3 = packet('198.19.3.7', '198.19.1.2');
    expect(ingress(fromH3, '198.18.0.2')).toEqual({ drop: 'spoofed_source' });
    // The /16 holds 198.19.2.3 too, but the /24 is more specific: only 198.18.0.2 may send from it.
    expect(ingress(packet('198.19.2.3', '198.19.1.2'), '198.18.0.16')).toEqual({ drop: 'spoofed_source' });
    const outside = packet('10.1.2.3', '198.19.1.2');
    expect(ingress(outside, '198.18.0.2')).toEqual({ drop: 'unknown_source' });
    expect(ingress(fromH3, '198.18.0.2', false).drop).toBeUndefined();
    expect(ingress(outside, '198.18.0.2', false).drop).toBeUndefined();
  });

  it('an empty datagram is empty, a runt truncated, TTL 1 ttl_exceeded', () => {
    expect(ingress(Buffer.alloc(0), '198.18.0.2')).toEqual({ drop: 'empty' });
    expect(ingress(Buffer.from([0x45]), '198.18.0.2')).toEqual({ drop: 'truncated' });
    expect(ingress(packet('198.19.2.3', '198.19.1.2', 1), '198.18.0.2')).toEqual({ drop: 'ttl_exceeded' });
  });
});

describe('forwarding decision arguments', () => {
  it('refuses a malformed route table with a Usage line', () => {
    const p = packet('198.19.1.2', '198.19.2.3');
    expect(() => native.egress(p, [{ ...route('198.19.2.0/24', '198.18.0.2'), prefixLen: 33 }], { tunIp: 0, mtu: MTU })).toThrow(/^Usage: egress/);
    expect(() => native.ingress(p, 0, [{ ...route('198.19.2.0/24', '198.18.0.2'), peerPort: 0 }], true)).toThrow(/^Usage: ingress/);
  });
});
