import { describe, expect, it } from 'vitest';
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
    ['SubnetLen not larger than the prefix', '{"Network":"198.19.0.0/16","SubnetLen":16}', /must be larger than the prefix/],
    ['SubnetLen above 30', '{"Network":"198.19.0.0/16","SubnetLen":31}', /30 or less/],
    ['SubnetLen not a number', '{"Network":"198.19.0.0/16","SubnetLen":"24"}', /whole number/],
    ['SubnetMin outside', '{"Network":"198.19.0.0/16","SubnetMin":"198.18.1.0"}', /SubnetMin.*not inside/],
    ['SubnetMax outside', '{"Network":"198.19.0.0/16","SubnetMax":"198.20.0.0"}', /SubnetMax.*not inside/],
    ['SubnetMin off boundary', '{"Network":"198.19.0.0/16","SubnetMin":"198.19.1.5"}', /boundary/],
    ['reversed Min/Max', '{"Network":"198.19.0.0/16","SubnetMin":"198.19.20.0","SubnetMax":"198.19.10.0"}', /above "SubnetMax"/],
    ['unknown backend', '{"Network":"198.19.0.0/16","Backend":{"Type":"vxlan2"}}', /unknown backend type: vxlan2/],
    ['bad port', '{"Network":"198.19.0.0/16","Backend":{"Type":"udp","Port":70000}}', /Backend.Port/],
  ];
  it.each(cases)('%s', (_name, text, message) => {
    expect(() => parseNetworkConfig(text)).toThrow(ConfigError);
    expect(() => parseNetworkConfig(text)).toThrow(message);
    try {
      parseNetworkConfig(text);
    } catch (err) {
      expect((err as Error).message).not.toContain('\n');
    }
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
