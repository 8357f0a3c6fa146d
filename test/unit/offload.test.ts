import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../src/datapath/native.js';
import { ACK, checksum, CWR, FIN, payloadOf, pattern, PSH, tcpSuperPacket, transportChecksum } from '../helpers/packets.js';

const { _test: native } = loadNativeAddon();
const MTU = 1472;

describe('splitting TCP super packets into flannel datagrams', () => {
  for (const size of [1, 1420, 1421, 3 * 1420 + 7, 64000]) {
    it(`${size} payload bytes: valid, MTU-sized, in-order segments`, () => {
      const sp = tcpSuperPacket({ payload: pattern(size), flags: ACK | PSH | FIN | CWR });
      const segments = native.splitTcp(sp.hdr, sp.packet, MTU)!;
      expect(segments).toHaveLength(Math.ceil(size / sp.mss));
      segments.forEach((s, i) => {
        expect(s.length).toBeLessThanOrEqual(MTU);
        expect(s.readUInt16BE(2)).toBe(s.length);
        expect(checksum(s.subarray(0, sp.ihl))).toBe(0);
        expect(transportChecksum(s)).toBe(0);
        expect(s.readUInt16BE(4)).toBe((1000 + i) & 0xffff);
        expect(s.readUInt32BE(sp.ihl + 4)).toBe((0xfffff000 + i * sp.mss) >>> 0);
        const flags = s[sp.ihl + 13];
        const last = i === segments.length - 1;
        expect(Boolean(flags & FIN)).toBe(last);
        expect(Boolean(flags & PSH)).toBe(last);
        expect(Boolean(flags & CWR)).toBe(i === 0);
        if (!last) expect(s.length).toBe(MTU);
      });
      expect(Buffer.concat(segments.map(payloadOf)).equals(pattern(size))).toBe(true);
    });
  }

  it('keeps IP options in every segment', () => {
    const options = Buffer.from([0x94, 4, 0, 0]); // router alert
    const sp = tcpSuperPacket({ payload: pattern(5000), ipOptions: options });
    const segments = native.splitTcp(sp.hdr, sp.packet, MTU)!;
    for (const s of segments) {
      expect(s[0] & 15).toBe(6);
      expect(s.subarray(20, 24).equals(options)).toBe(true);
      expect(checksum(s.subarray(0, 24))).toBe(0);
      expect(transportChecksum(s)).toBe(0);
    }
    expect(Buffer.concat(segments.map(payloadOf)).equals(pattern(5000))).toBe(true);
  });

  it('refuses malformed super packets', () => {
    const sp = tcpSuperPacket({ payload: pattern(3000) });
    expect(native.splitTcp(sp.hdr, sp.packet.subarray(0, 30), MTU)).toBeNull();
    const udp = Buffer.from(sp.packet);
    udp[9] = 17;
    expect(native.splitTcp(sp.hdr, udp, MTU)).toBeNull();
    const badThl = Buffer.from(sp.packet);
    badThl[20 + 12] = 0x10; // 4-byte TCP header
    expect(native.splitTcp(sp.hdr, badThl, MTU)).toBeNull();
  });
});

describe('coalescing received datagrams into TCP super packets', () => {
  it('merges the segments of a split back into one super packet with the same payload', () => {
    const sp = tcpSuperPacket({ payload: pattern(20000), flags: ACK | PSH });
    const segments = native.splitTcp(sp.hdr, sp.packet, MTU)!;
    const writes = native.coalesce(segments);
    expect(writes).toHaveLength(1);
    const [w] = writes;
    const hdr = w.subarray(0, 10);
    const packet = w.subarray(10);
    expect([hdr[0], hdr[1], hdr.readUInt16LE(2), hdr.readUInt16LE(4), hdr.readUInt16LE(6), hdr.readUInt16LE(8)]).toEqual([1, 1, sp.ihl + sp.thl, sp.mss, 20, 16]);
    expect(packet.readUInt16BE(2)).toBe(packet.length);
    expect(checksum(packet.subarray(0, 20))).toBe(0);
    expect(payloadOf(packet).equals(pattern(20000))).toBe(true);
    expect(packet[20 + 13] & PSH).toBe(PSH);
    // NEEDS_CSUM: the field holds the folded pseudo-header sum, which completes to a valid checksum.
    const completed = Buffer.from(packet);
    completed.writeUInt16BE(checksum(completed.subarray(20)), 20 + 16);
    expect(transportChecksum(completed)).toBe(0);
  });

  it('passes non-TCP, out-of-order and corrupted packets through untouched', () => {
    const sp = tcpSuperPacket({ payload: pattern(5000) });
    const segs = native.splitTcp(sp.hdr, sp.packet, MTU)!;
    const udp = Buffer.from(segs[0]);
    udp[9] = 17;
    udp.writeUInt16BE(0, 10);
    udp.writeUInt16BE(checksum(udp.subarray(0, 20)), 10);
    const corrupted = Buffer.from(segs[1]);
    corrupted[corrupted.length - 1] ^= 0xff;
    const writes = native.coalesce([udp, segs[2], corrupted, segs[0]]);
    expect(writes.map((w) => w.subarray(10))).toEqual([udp, segs[2], corrupted, segs[0]]);
    for (const w of writes) expect(w.subarray(0, 10).equals(Buffer.alloc(10))).toBe(true);
  });

  it('never merges across flows or with a gap in sequence numbers', () => {
    const a = native.splitTcp(tcpSuperPacket({ payload: pattern(4000) }).hdr, tcpSuperPacket({ payload: pattern(4000) }).packet, MTU)!;
    const b = native.splitTcp(tcpSuperPacket({ payload: pattern(4000), seq: 5 }).hdr, tcpSuperPacket({ payload: pattern(4000), seq: 5 }).packet, MTU)!;
    const writes = native.coalesce([a[0], b[1], a[2]]);
    expect(writes).toHaveLength(3);
  });

  it('survives random garbage (bounded fuzz)', () => {
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
    const base = tcpSuperPacket({ payload: pattern(3000) });
    for (let i = 0; i < 2000; i++) {
      const p = Buffer.from(base.packet.subarray(0, 20 + (rand() * 20) % base.packet.length));
      for (let k = 0; k < 4; k++) p[rand() % p.length] = rand();
      const h = Buffer.from(base.hdr);
      h[rand() % 10] = rand();
      native.splitTcp(h, p, MTU);
      native.coalesce([p, p]);
    }
  });
});
