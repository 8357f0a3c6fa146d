import { describe, expect, it } from 'vitest';
import { prepareBackend } from '../../src/backend/registry.js';
import { parseNetworkConfig } from '../../src/config/parse-network-config.js';
import { ConfigError } from '../../src/errors.js';
import { formatIpv4, formatIpv4Net } from '../../src/ip/ipv4.js';

function summary(text: string) {
  const c = parseNetworkConfig(text);
  return { network: formatIpv4Net(c.network), subnetLen: c.subnetLen, min: formatIpv4(c.subnetMin), max: formatIpv4(c.subnetMax), backend: c.backend.type };
}

describe('network config defaults (flannel pkg/subnet/config.go)', () => {
  it('a /16 gets /24 subnets, skipping the first, up to the last', () => {
    expect(summary('{"Network":"198.19.0.0/16"}')).toEqual({ network: '198.19.0.0/16', subnetLen: 24, min: '198.19.1.0', max: '198.19.255.0', backend: 'udp' });
  });
  it('a /22 still gets /24s; a /24 gets prefix+2', () => {
    expect(summary('{"Network":"198.19.4.0/22"}').subnetLen).toBe(24);
    expect(summary('{"Network":"198.19.4.0/24"}')).toMatchObject({ subnetLen: 26, min: '198.19.4.64', max: '198.19.4.192' });
  });
  it('masks the network address and accepts keys in any case, like Go', () => {
    expect(summary('{"network":"198.19.7.9/16","subnetlen":20,"backend":{"type":"UDP","port":9000}}')).toMatchObject({ network: '198.19.0.0/16', subnetLen: 20, backend: 'udp' });
  });
  it('keeps explicit SubnetMin/SubnetMax and backend options', () => {
    const c = parseNetworkConfig('{"Network":"198.19.0.0/16","SubnetMin":"198.19.10.0","SubnetMax":"198.19.20.0","Backend":{"Type":"alloc","Port":7890}}');
    expect([formatIpv4(c.subnetMin), formatIpv4(c.subnetMax), c.backend.type, c.backend.options.Port]).toEqual(['198.19.10.0', '198.19.20.0', 'alloc', 7890]);
  });
});

describe('network config errors are one-line ConfigErrors', () => {
  const cases: [string, string, RegExp][] = [
    ['malformed JSON', '{"Network":', /not valid JSON/],
    ['not an object', '[1,2]', /must be a JSON object/],
    ['Network missing', '{"SubnetLen":24}', /no "Network"/],
    ['Network not a CIDR', '{"Network":"198.19.0.0"}', /not an IPv4 CIDR/],
    ['Network IPv6', '{"Network":"fc00::/64"}', /not an IPv4 CIDR/],
    ['Network too small', '{"Network":"198.19.0.0/30"}', /too small/],
    ['SubnetLen not larger than the prefix', '{"Network":"198.19.0.0/16","SubnetLen":16}', /at least four subnets \(SubnetLen 18 or more\)/],
    ['SubnetLen only prefix+1 (two subnets)', '{"Network":"198.19.0.0/16","SubnetLen":17}', /at least four subnets/],
    ['SubnetLen above 30', '{"Network":"198.19.0.0/16","SubnetLen":31}', /30 or less/],
    ['SubnetLen not a number', '{"Network":"198.19.0.0/16","SubnetLen":"24"}', /whole number/],
    ['SubnetMin outside', '{"Network":"198.19.0.0/16","SubnetMin":"198.18.1.0"}', /SubnetMin.*not inside/],
    ['SubnetMax outside', '{"Network":"198.19.0.0/16","SubnetMax":"198.20.0.0"}', /SubnetMax.*not inside/],
    ['SubnetMin off boundary', '{"Network":"198.19.0.0/16","SubnetMin":"198.19.1.5"}', /boundary/],
    ['reversed Min/Max', '{"Network":"198.19.0.0/16","SubnetMin":"198.19.20.0","SubnetMax":"198.19.10.0"}', /above "SubnetMax"/],
    ['Backend without Type', '{"Network":"198.19.0.0/16","Backend":{"Port":8285}}', /"Backend" has no "Type"/],
    ['EnableIPv6', '{"Network":"198.19.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48"}', /"EnableIPv6": true is not supported/],
    ['EnableIPv4 off', '{"Network":"198.19.0.0/16","EnableIPv4":false}', /"EnableIPv4": false is not supported/],
    ['EnableIPv6 not a boolean', '{"Network":"198.19.0.0/16","EnableIPv6":"yes"}', /"EnableIPv6" must be true or false/],
    // The Backend object's keys belong to its type: the backend registry validates them.
    ['unknown backend', '{"Network":"198.19.0.0/16","Backend":{"Type":"vxlan2"}}', /unknown backend type: vxlan2 \(supported: udp/],
    ['bad port', '{"Network":"198.19.0.0/16","Backend":{"Type":"udp","Port":70000}}', /Backend.Port/],
  ];
  const parseAll = (text: string) => prepareBackend(parseNetworkConfig(text).backend);
  it.each(cases)('%s', (_name, text, message) => {
    expect(() => parseAll(text)).toThrow(ConfigError);
    expect(() => parseAll(text)).toThrow(message);
    try {
      parseAll(text);
    } catch (err) {
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('EnableIPv4 true and EnableIPv6 false are what flannel-ts does anyway', () => {
    expect(summary('{"Network":"198.19.0.0/16","EnableIPv4":true,"EnableIPv6":false}').network).toBe('198.19.0.0/16');
  });

  it('random garbage only ever raises ConfigError (bounded fuzz)', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pieces = ['{', '}', '"Network"', ':', '"198.19.0.0/16"', ',', '"SubnetLen"', '24', '-1', '1e9', 'null', '[', ']', '"Backend"', '{"Type":1}', '"SubnetMin"', '"x"', 'true'];
    for (let i = 0; i < 3000; i++) {
      const text = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => pieces[Math.floor(rand() * pieces.length)]).join('');
      try {
        parseNetworkConfig(text);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
      }
    }
  });
});
