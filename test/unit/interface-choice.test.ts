import { describe, expect, it } from 'vitest';
import { parseFlags } from '../../src/cli/flags.js';
import { InterfaceError } from '../../src/errors.js';
import { chooseInterface, parseSelection, usableAddresses, type HostView, type InterfaceSelection } from '../../src/iface/external-interface.js';
import { formatIpv4, parseIpv4 } from '../../src/ip/ipv4.js';
import type { LinkInfo } from '../../src/kernel/netlink.js';

const link = (index: number, name: string, ...addresses: string[]): LinkInfo => ({ index, name, mtu: 1500 + index, addresses: addresses.map(parseIpv4) });

// A host as flannel users describe theirs: loopback, a NAT interface on the default route (Vagrant's eth0), the
// cluster LAN on eth1, a bridge, and a down interface without an address.
const LINKS = [
  link(1, 'lo', '127.0.0.1'),
  link(2, 'eth0', '198.18.200.15'),
  link(3, 'eth1', '198.18.0.7', '198.18.9.7'),
  link(4, 'docker0', '198.19.5.1'),
  link(5, 'ens9'),
  link(6, 'ens10', '169.254.3.3', '198.18.77.1'),
];
const HOST: HostView = { links: LINKS, defaultRouteOif: 2 };

function choose(selection: Partial<InterfaceSelection>, host: HostView = HOST) {
  const c = chooseInterface(parseSelection({ ifaces: [], ifaceRegexes: [], canReach: '', publicIp: '', ...selection }), host);
  return { name: c.link.name, address: formatIpv4(c.address), publicIp: formatIpv4(c.publicIp), by: c.selectedBy };
}

describe('interface choice (flannel main.go order)', () => {
  it('with nothing asked, takes the default route interface and its first address', () => {
    expect(choose({})).toEqual({ name: 'eth0', address: '198.18.200.15', publicIp: '198.18.200.15', by: 'the default route' });
  });

  it('--iface entries are tried in order, by name or by an address the interface holds', () => {
    expect(choose({ ifaces: ['eth9', 'eth1'] })).toMatchObject({ name: 'eth1', address: '198.18.0.7', by: '--iface eth1' });
    expect(choose({ ifaces: ['198.18.9.7', 'eth0'] })).toMatchObject({ name: 'eth1', address: '198.18.9.7' });
    // An interface without an address is no match: the next entry is tried, as flannel does.
    expect(choose({ ifaces: ['ens9', 'docker0'] })).toMatchObject({ name: 'docker0' });
  });

  it('--iface comes before --iface-regex, which comes before --iface-can-reach', () => {
    const canReachRoute = { oif: 6, prefsrc: parseIpv4('198.18.77.1') };
    expect(choose({ ifaces: ['eth0'], ifaceRegexes: ['^eth1$'], canReach: '198.18.77.9' }, { ...HOST, canReachRoute })).toMatchObject({ name: 'eth0' });
    expect(choose({ ifaces: ['nope'], ifaceRegexes: ['^eth1$'], canReach: '198.18.77.9' }, { ...HOST, canReachRoute })).toMatchObject({ name: 'eth1' });
    expect(choose({ ifaces: ['nope'], ifaceRegexes: ['^nope'], canReach: '198.18.77.9' }, { ...HOST, canReachRoute })).toMatchObject({
      name: 'ens10', address: '198.18.77.1', by: '--iface-can-reach 198.18.77.9',
    });
  });

  it('a regex is tried against every interface\'s addresses before any name, and the matching address is used', () => {
    // The name eth0 matches and comes first, but an address match anywhere wins over every name match.
    expect(choose({ ifaceRegexes: ['eth|\\.77\\.'] })).toMatchObject({ name: 'ens10', address: '198.18.77.1' });
    expect(choose({ ifaceRegexes: ['\\.9\\.'] })).toMatchObject({ name: 'eth1', address: '198.18.9.7' });
    expect(choose({ ifaceRegexes: ['^198\\.18\\.77\\.'] })).toMatchObject({ name: 'ens10', address: '198.18.77.1' });
    expect(choose({ ifaceRegexes: ['docker'] })).toMatchObject({ name: 'docker0', address: '198.19.5.1' });
    // 127.0.0.1 is not an address flannel matches against; the name lo still is.
    expect(() => choose({ ifaceRegexes: ['^127\\.'] })).toThrow(InterfaceError);
    // Regexes are tried in order; the first that matches anything wins.
    expect(choose({ ifaceRegexes: ['^wlan', '^ens'] })).toMatchObject({ name: 'ens10', address: '198.18.77.1', by: '--iface-regex ^ens' });
  });

  it('accepts RE2\'s leading flag group and regexes with commas (one flag value, not split)', () => {
    expect(choose({ ifaceRegexes: ['(?i)^ETH1$'] })).toMatchObject({ name: 'eth1' });
    expect(parseFlags(['--iface-regex', '^eth[0-9]{1,2}$'], {}).ifaceRegex).toEqual(['^eth[0-9]{1,2}$']);
    expect(choose({ ifaceRegexes: parseFlags(['--iface-regex', '^eth[1-9]{1,2}$'], {}).ifaceRegex })).toMatchObject({ name: 'eth1' });
  });

  it('--iface-can-reach takes the route\'s interface and preferred source, or the interface\'s first address', () => {
    expect(choose({ canReach: '198.18.0.254' }, { ...HOST, canReachRoute: { oif: 3, prefsrc: parseIpv4('198.18.9.7') } })).toMatchObject({ name: 'eth1', address: '198.18.9.7' });
    expect(choose({ canReach: '198.18.0.254' }, { ...HOST, canReachRoute: { oif: 3 } })).toMatchObject({ name: 'eth1', address: '198.18.0.7' });
  });

  it('an asked-for interface that does not exist is a one-line error naming everything asked, never a fallback', () => {
    const fail = () => choose({ ifaces: ['eth7', '198.18.3.3', 'ens9'], ifaceRegexes: ['^wlan'], canReach: '198.18.44.4' }, { ...HOST, canReachRoute: new Error('ENETUNREACH') });
    expect(fail).toThrow(InterfaceError);
    expect(fail).toThrow(
      'no interface matches --iface eth7 (no such interface), --iface 198.18.3.3 (no interface holds it), --iface ens9 (it has no IPv4 address), ' +
        '--iface-regex ^wlan, --iface-can-reach 198.18.44.4 (ENETUNREACH); interfaces: lo [127.0.0.1], eth0 [198.18.200.15], eth1 [198.18.0.7 198.18.9.7], ',
    );
    let message = '';
    try {
      fail();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toContain('\n');
  });

  it('rejects an invalid regex or address with one line naming the flag', () => {
    expect(() => choose({ ifaceRegexes: ['eth(['] })).toThrow(/^--iface-regex "eth\(\[" is not a valid regular expression/);
    expect(() => choose({ canReach: 'gateway' })).toThrow('--iface-can-reach "gateway" is not an IPv4 address');
    expect(() => choose({ publicIp: '198.18.300.1' })).toThrow('--public-ip "198.18.300.1" is not an IPv4 address');
  });

  it('--public-ip alone picks the interface that holds it', () => {
    expect(choose({ publicIp: '198.18.9.7' })).toEqual({ name: 'eth1', address: '198.18.9.7', publicIp: '198.18.9.7', by: '--public-ip 198.18.9.7' });
  });

  it('--public-ip held by no interface (NAT): the default route interface, the public IP advertised as given', () => {
    const c = choose({ publicIp: '198.18.250.1' });
    expect(c).toMatchObject({ name: 'eth0', address: '198.18.200.15', publicIp: '198.18.250.1' });
    expect(c.by).toMatch(/^the default route \(no interface holds --public-ip 198\.18\.250\.1/);
    expect(() => choose({ publicIp: '198.18.250.1' }, { links: LINKS })).toThrow(/no IPv4 default route/);
  });

  it('--public-ip with --iface advertises the public IP on the asked interface', () => {
    expect(choose({ ifaces: ['eth1'], publicIp: '198.18.250.1' })).toMatchObject({ name: 'eth1', address: '198.18.0.7', publicIp: '198.18.250.1' });
  });

  it('prefers global addresses to link-local ones and never offers loopback or multicast', () => {
    expect(usableAddresses(link(9, 'x', '169.254.1.1', '127.0.0.2', '224.0.0.1', '198.18.1.1')).map(formatIpv4)).toEqual(['198.18.1.1', '169.254.1.1']);
    expect(choose({ ifaces: ['ens10'] })).toMatchObject({ address: '198.18.77.1' });
    // Explicitly asked for, loopback still works: single-machine setups run on lo.
    expect(choose({ ifaces: ['lo'] })).toMatchObject({ name: 'lo', address: '127.0.0.1' });
  });
});
