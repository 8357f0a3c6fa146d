import { describe, expect, it } from 'vitest';
import { hostGwPeerOf } from '../../src/backend/host-gw/host-gw-backend.js';
import { prepareBackend } from '../../src/backend/registry.js';
import { parseVxlanConfig, vxlanOverlayMtu } from '../../src/backend/vxlan/vxlan-config.js';
import { vxlanPeerOf } from '../../src/backend/vxlan/vxlan-backend.js';
import { ConfigError } from '../../src/errors.js';
import { parseIpv4, parseIpv4Net } from '../../src/ip/ipv4.js';
import { parseMac } from '../../src/ip/mac.js';
import type { RouteInfo } from '../../src/kernel/netlink.js';
import { directlyConnected } from '../../src/kernel/routes.js';
import { vxlanIncompatibility, type VxlanLinkSpec, type VxlanLinkState } from '../../src/kernel/vxlan-link.js';
import type { Lease, LeaseAttrs } from '../../src/subnet/lease.js';

describe('vxlan config keys (flannel pkg/backend/vxlan)', () => {
  it('defaults: VNI 1, kernel port, no GBP, no learning, no direct routing, the interface MTU', () => {
    expect(parseVxlanConfig({ Type: 'vxlan' })).toEqual({ vni: 1, port: 0, gbp: false, learning: false, directRouting: false });
  });

  it('reads every key, in any case, like Go\'s encoding/json; null keeps the default', () => {
    expect(parseVxlanConfig({ type: 'vxlan', vni: 4096, port: 4789, gbp: true, learning: true, directrouting: true, mtu: 9000 })).toEqual({
      vni: 4096, port: 4789, gbp: true, learning: true, directRouting: true, mtu: 9000,
    });
    expect(parseVxlanConfig({ VNI: null, Port: null }).vni).toBe(1);
  });

  it('MTU is the size of the packets on the wire, as in flannel: the overlay gets 50 bytes less', () => {
    expect(vxlanOverlayMtu(parseVxlanConfig({}), 1500)).toBe(1450);
    expect(vxlanOverlayMtu(parseVxlanConfig({ MTU: 9000 }), 1500)).toBe(8950);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['VNI as a string', { VNI: '1' }, /"Backend.VNI" must be a VXLAN network identifier \(0-16777215\), got "1"/],
    ['VNI of 25 bits', { VNI: 16777216 }, /"Backend.VNI" must be .* got 16777216/],
    ['VNI not whole', { VNI: 1.5 }, /"Backend.VNI"/],
    ['negative Port', { Port: -1 }, /"Backend.Port" must be a UDP port number \(0-65535\), got -1/],
    ['Port too large', { Port: 65536 }, /"Backend.Port"/],
    ['GBP as a string', { GBP: 'true' }, /"Backend.GBP" must be true or false, got "true"/],
    ['Learning as a number', { Learning: 1 }, /"Backend.Learning" must be true or false/],
    ['DirectRouting as a string', { DirectRouting: 'yes' }, /"Backend.DirectRouting" must be true or false/],
    ['MTU leaving no overlay', { MTU: 100 }, /"Backend.MTU" 100 leaves no room for the overlay: it must be at least 118/],
    ['MTU as a string', { MTU: '1500' }, /"Backend.MTU"/],
  ];
  it.each(bad)('%s is one ConfigError line', (_name, options, message) => {
    const parse = () => prepareBackend({ type: 'vxlan', options: { Type: 'vxlan', ...options } });
    expect(parse).toThrow(ConfigError);
    expect(parse).toThrow(message);
    expect(() => parse()).toThrow(/^[^\n]+$/);
  });

  it('host-gw takes no keys and ignores unknown ones, as flannel does', () => {
    expect(prepareBackend({ type: 'host-gw', options: { Type: 'host-gw', VNI: 'x' } }).type).toBe('host-gw');
  });
});

function lease(attrs: Partial<LeaseAttrs>): Lease {
  return { subnet: parseIpv4Net('198.19.5.0/24'), attrs: { PublicIP: '198.18.0.5', ...attrs } };
}

describe('peer leases each backend can use', () => {
  it('vxlan takes a vxlan lease\'s PublicIP and VtepMAC (any case, any separator Go accepts)', () => {
    expect(vxlanPeerOf(lease({ BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: 'C6:D2:32:6F:8F:44' } }))).toEqual({ want: { publicIp: parseIpv4('198.18.0.5'), vtepMac: 'c6:d2:32:6f:8f:44' } });
    expect(vxlanPeerOf(lease({ BackendType: 'vxlan', BackendData: { vni: 1, vtepmac: 'c6-d2-32-6f-8f-44' } }))).toMatchObject({ want: { vtepMac: 'c6:d2:32:6f:8f:44' } });
  });

  it('vxlan ignores other backends and malformed BackendData, saying why', () => {
    expect(vxlanPeerOf(lease({}))).toEqual({ ignore: 'its BackendType is null, not "vxlan"' });
    expect(vxlanPeerOf(lease({ BackendType: 'host-gw' }))).toMatchObject({ ignore: expect.stringContaining('"host-gw"') });
    for (const data of [undefined, null, 'x', [], { VNI: 1 }, { VtepMAC: 'zz:zz:zz:zz:zz:zz' }, { VtepMAC: 7 }]) {
      expect(vxlanPeerOf(lease({ BackendType: 'vxlan', BackendData: data }))).toMatchObject({ ignore: expect.stringContaining('no valid VtepMAC') });
    }
  });

  it('host-gw takes host-gw leases only', () => {
    expect(hostGwPeerOf(lease({ BackendType: 'host-gw' }))).toEqual({ want: { publicIp: parseIpv4('198.18.0.5') } });
    expect(hostGwPeerOf(lease({ BackendType: 'vxlan' }))).toHaveProperty('ignore');
  });

  it('parses the MAC forms of Go\'s net.ParseMAC for 48-bit addresses', () => {
    expect(['aa:bb:cc:dd:ee:ff', 'AA-BB-CC-DD-EE-FF', 'aabb.ccdd.eeff'].map(parseMac)).toEqual(Array(3).fill('aa:bb:cc:dd:ee:ff'));
    expect(['aa:bb:cc:dd:ee', 'aa:bb-cc:dd:ee:ff', 'aa:bb:cc:dd:ee:ff:00:11', '', undefined].map(parseMac)).toEqual(Array(5).fill(undefined));
  });
});

describe('directly connected peers (host-gw, vxlan DirectRouting)', () => {
  const route = (cidr: string, r: Partial<RouteInfo>): RouteInfo => {
    const net = parseIpv4Net(cidr);
    return { dst: net.ip, dstLen: net.prefixLen, protocol: 2, type: 1, onlink: false, ...r };
  };
  const routes = [
    route('198.18.0.0/24', { oif: 2 }),
    route('198.18.0.128/25', { oif: 2, gateway: parseIpv4('198.18.0.1') }),
    route('198.18.1.0/24', { oif: 3 }),
    route('0.0.0.0/0', { oif: 2, gateway: parseIpv4('198.18.0.254') }),
    route('198.18.2.0/24', { oif: 2, type: 6 }),
  ];
  it('is decided by the most specific route: no gateway, through the external interface', () => {
    expect(directlyConnected(routes, parseIpv4('198.18.0.5'), 2)).toBe(true);
    expect(directlyConnected(routes, parseIpv4('198.18.0.200'), 2)).toBe(false); // behind a gateway
    expect(directlyConnected(routes, parseIpv4('198.18.1.5'), 2)).toBe(false); // another interface
    expect(directlyConnected(routes, parseIpv4('198.18.9.9'), 2)).toBe(false); // default route
    expect(directlyConnected(routes, parseIpv4('198.18.2.5'), 2)).toBe(false); // a blackhole, not a path
  });
});

describe('reusing an existing vxlan device', () => {
  const spec: VxlanLinkSpec = { name: 'flannel.1', vni: 1, local: parseIpv4('198.18.0.1'), dev: 2, port: 0, gbp: false, learning: false, mtu: 1450 };
  const have: VxlanLinkState = {
    index: 9, mac: '02:00:00:00:00:01', mtu: 1400, kind: 'vxlan', vni: 1, local: parseIpv4('198.18.0.1'), dev: 2, port: 8472,
    gbp: false, learning: false, l2miss: false, l3miss: false, external: false,
  };
  it('a device with flannel\'s attributes is compatible, whatever its MTU (the kernel default port counts as 0)', () => {
    expect(vxlanIncompatibility(have, spec)).toBeUndefined();
  });
  it.each([
    ['kind', { kind: 'bridge' }, /not vxlan/],
    ['VNI', { vni: 2 }, /VNI 2 instead of 1/],
    ['external interface', { dev: 3 }, /external interface #3/],
    ['local address', { local: parseIpv4('198.18.0.9') }, /local 198\.18\.0\.9 instead of 198\.18\.0\.1/],
    ['port', { port: 4789 }, /port 4789 instead of 8472/],
    ['GBP', { gbp: true }, /gbp on/],
    ['learning', { learning: true }, /learning on/],
    ['L2 miss', { l2miss: true }, /miss/],
    ['remote', { group: parseIpv4('198.18.0.2') }, /remote or group/],
    ['metadata mode', { external: true }, /external/],
  ] as [string, Partial<VxlanLinkState>, RegExp][])('a different %s is not', (_what, diff, reason) => {
    expect(vxlanIncompatibility({ ...have, ...diff }, spec)).toMatch(reason);
  });
});
