import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../src/datapath/native.js';
import { parseIpv4 } from '../../src/ip/ipv4.js';
import { checksum, ipv4Packet } from '../helpers/packets.js';

const { _test: packet } = loadNativeAddon();

function ipv4(opts: { src: string; dst: string; ttl?: number; protocol?: number; payload?: Buffer; options?: Buffer; fragOffset?: number }): Buffer {
  return ipv4Packet({ ...opts, flagsFragment: opts.fragOffset });
}

describe('packet checks', () => {
  it('parses a valid header, including IP options', () => {
    const p = ipv4({ src: '198.19.1.2', dst: '198.19.2.3', options: Buffer.from([1, 1, 1, 0]) });
    expect(packet.parse(p)).toMatchObject({ src: parseIpv4('198.19.1.2'), dst: parseIpv4('198.19.2.3'), headerLength: 24, totalLength: p.length, ttl: 64, protocol: 1 });
  });
  it('classifies malformed packets by reason', () => {
    const good = ipv4({ src: '198.19.1.2', dst: '198.19.2.3' });
    expect(packet.parse(good.subarray(0, 19)).drop).toBe('truncated');
    const v6 = Buffer.from(good);
    v6[0] = 0x65;
    expect(packet.parse(v6).drop).toBe('not_ipv4');
    const ihl = Buffer.from(good);
    ihl[0] = 0x44;
    expect(packet.parse(ihl).drop).toBe('bad_header_length');
    const long = Buffer.from(good);
    long.writeUInt16BE(good.length + 10, 2);
    expect(packet.parse(long).drop).toBe('truncated');
  });
});

describe('TTL decrement (RFC 1624 incremental checksum)', () => {
  it('keeps the header checksum valid for every TTL', () => {
    for (let ttl = 2; ttl <= 255; ttl++) {
      const out = packet.decrementTtl(ipv4({ src: '198.19.1.2', dst: '198.19.2.3', ttl, options: Buffer.from([1, 1, 1, 0]) }))!;
      expect(out[8]).toBe(ttl - 1);
      expect(checksum(out.subarray(0, 24))).toBe(0);
    }
  });
  it('refuses to forward TTL 1 or 0', () => {
    expect(packet.decrementTtl(ipv4({ src: '198.19.1.2', dst: '198.19.2.3', ttl: 1 }))).toBeNull();
    expect(packet.decrementTtl(ipv4({ src: '198.19.1.2', dst: '198.19.2.3', ttl: 0 }))).toBeNull();
  });
});

describe('ICMP net unreachable', () => {
  it('quotes the header and 8 bytes, from the TUN address, with valid checksums', () => {
    const offending = ipv4({ src: '198.19.1.2', dst: '198.19.99.3', protocol: 17, payload: Buffer.alloc(100, 7) });
    const icmp = packet.buildNetUnreachable(offending, parseIpv4('198.19.1.0'))!;
    expect(icmp.length).toBe(20 + 8 + 28);
    expect(icmp.readUInt32BE(12)).toBe(parseIpv4('198.19.1.0'));
    expect(icmp.readUInt32BE(16)).toBe(parseIpv4('198.19.1.2'));
    expect([icmp[9], icmp[20], icmp[21]]).toEqual([1, 3, 0]);
    expect(icmp[8]).toBe(8); // TTL, as flannel's proxy sets it
    expect(checksum(icmp.subarray(0, 20))).toBe(0);
    expect(checksum(icmp.subarray(20))).toBe(0);
    expect(icmp.subarray(28).equals(offending.subarray(0, 28))).toBe(true);
  });
  it('never answers an ICMP error or a non-first fragment', () => {
    const icmpError = ipv4({ src: '198.19.1.2', dst: '198.19.99.3', payload: Buffer.from('0300fcff00000000', 'hex') });
    expect(packet.buildNetUnreachable(icmpError, 1)).toBeNull();
    expect(packet.buildNetUnreachable(ipv4({ src: '198.19.1.2', dst: '198.19.99.3', fragOffset: 10 }), 1)).toBeNull();
    expect(packet.buildNetUnreachable(ipv4({ src: '198.19.1.2', dst: '198.19.99.3' }), 1)).not.toBeNull(); // echo request
  });
});
