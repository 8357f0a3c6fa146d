import { describe, expect, it } from 'vitest';
import { formatIpv4Net, parseIpv4Net } from '../../src/ip/ipv4.js';
import type { Lease } from '../../src/subnet/lease.js';
import { screenLeases } from '../../src/subnet/lease-screen.js';

const NETWORK = parseIpv4Net('198.19.0.0/16');
const OWN = { subnet: parseIpv4Net('198.19.2.0/24'), publicIp: '198.18.0.99' };
const lease = (subnet: string, publicIp: string): Lease => ({ subnet: parseIpv4Net(subnet), attrs: { PublicIP: publicIp } });

function screen(leases: Lease[], own: { subnet?: ReturnType<typeof parseIpv4Net>; publicIp: string } = OWN) {
  const { routable, ignored } = screenLeases(leases, NETWORK, own);
  return {
    routable: routable.map((l) => formatIpv4Net(l.subnet)).sort(),
    ignored: ignored.map((i) => `${formatIpv4Net(i.lease.subnet)} ${i.reason} ${i.conflict}`).sort(),
  };
}

describe('screenLeases', () => {
  it('routes disjoint peer leases, adjacent ones included, and never our own', () => {
    expect(screen([lease('198.19.1.0/24', '198.18.0.1'), lease('198.19.2.0/24', '198.18.0.99'), lease('198.19.3.0/24', '198.18.0.3')])).toEqual({
      routable: ['198.19.1.0/24', '198.19.3.0/24'],
      ignored: [],
    });
  });

  it('holds back a lease outside Network, or wider than it', () => {
    expect(screen([lease('198.18.5.0/24', '198.18.0.5'), lease('198.18.0.0/15', '198.18.0.6')]).ignored).toEqual([
      '198.18.0.0/15 outside_network 198.19.0.0/16',
      '198.18.5.0/24 outside_network 198.19.0.0/16',
    ]);
  });

  it('holds back a peer lease overlapping ours, naming our key, even before our own lease is listed', () => {
    expect(screen([lease('198.19.2.128/25', '198.18.0.7')])).toEqual({ routable: [], ignored: ['198.19.2.128/25 overlap 198.19.2.0-24'] });
    expect(screen([lease('198.19.2.0/24', '198.18.0.7')], OWN).ignored).toEqual(['198.19.2.0/24 overlap 198.19.2.0-24']);
  });

  it('holds back both peers of an overlapping pair, each naming the other, and leaves the rest routed', () => {
    expect(screen([lease('198.19.5.0/24', '198.18.0.5'), lease('198.19.5.64/26', '198.18.0.6'), lease('198.19.6.0/24', '198.18.0.8')])).toEqual({
      routable: ['198.19.6.0/24'],
      ignored: ['198.19.5.0/24 overlap 198.19.5.64-26', '198.19.5.64/26 overlap 198.19.5.0-24'],
    });
  });

  it('finds an overlap hidden behind a shorter lease that starts first', () => {
    // 198.19.8.0/22 spans 8.0-11.255; 198.19.9.0/24 starts after 198.19.8.0/24 ends but inside the /22.
    const { ignored } = screen([lease('198.19.8.0/24', '198.18.0.1'), lease('198.19.8.0/22', '198.18.0.2'), lease('198.19.9.0/24', '198.18.0.3')]);
    expect(ignored.map((i) => i.split(' ')[0])).toEqual(['198.19.8.0/22', '198.19.8.0/24', '198.19.9.0/24']);
  });

  it('with no lease of ours yet, checks peers against each other only', () => {
    expect(screen([lease('198.19.2.0/24', '198.18.0.7')], { publicIp: OWN.publicIp })).toEqual({ routable: ['198.19.2.0/24'], ignored: [] });
  });
});
