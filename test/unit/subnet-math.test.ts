import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../../src/config/parse-network-config.js';
import { formatIpv4Net, parseIpv4, parseIpv4Net } from '../../src/ip/ipv4.js';
import { fitsConfig, freeSubnets } from '../../src/subnet/allocator.js';
import { formatSubnetFile, parseEnvFile } from '../../src/subnet/subnet-file.js';
import { parseLeaseValue, parseSubnetKey, subnetKey } from '../../src/subnet/subnet-key.js';

describe('subnet keys and lease values', () => {
  it('round-trips flannel key names', () => {
    const net = parseIpv4Net('198.19.5.0/24');
    expect(subnetKey(net)).toBe('198.19.5.0-24');
    expect(parseSubnetKey('198.19.5.0-24')).toEqual({ subnet: net });
    for (const bad of ['198.19.5.1-24', '198.19.5.0-33', 'config', '300.1.1.0-24', '198.19.5.0-24&', '198.19.5.0-24&fc00::-129', '198.19.5.0-24&fc00:::1-64', '198.19.5.0-24&FC00::-64', '198.19.5.0-24&fc00::-64x']) {
      expect(parseSubnetKey(bad)).toBeUndefined();
    }
  });
  it('parses flannel\'s dual-stack keys: the IPv4 subnet counts, the IPv6 part is kept to name the key again', () => {
    const parts = parseSubnetKey('198.19.5.0-24&fc00::-64');
    expect(parts).toEqual({ subnet: parseIpv4Net('198.19.5.0/24'), ipv6Subnet: 'fc00::/64' });
    expect(subnetKey(parts!.subnet, parts!.ipv6Subnet)).toBe('198.19.5.0-24&fc00::-64');
    expect(parseSubnetKey('198.19.6.0-24&fd12:3456:789a:1::-64')?.ipv6Subnet).toBe('fd12:3456:789a:1::/64');
  });
  it('accepts values written by flannel and rejects garbage', () => {
    expect(parseLeaseValue('{"PublicIP":"198.18.0.5"}')).toEqual({ PublicIP: '198.18.0.5' });
    expect(parseLeaseValue('{"PublicIP":"198.18.0.5","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1}}')?.BackendType).toBe('vxlan');
    for (const bad of ['not json', '[]', '{}', '{"PublicIP":5}', '{"PublicIP":"x"}', '{"PublicIP":"198.18.0.5","BackendType":3}']) expect(parseLeaseValue(bad)).toBeUndefined();
  });
});

describe('allocation candidates', () => {
  const config = parseNetworkConfig('{"Network":"198.19.0.0/22","SubnetLen":24}');
  it('skips the first subnet and anything taken', () => {
    expect(freeSubnets(config, []).map(formatIpv4Net)).toEqual(['198.19.1.0/24', '198.19.2.0/24', '198.19.3.0/24']);
    expect(freeSubnets(config, [parseIpv4Net('198.19.2.0/24')]).map(formatIpv4Net)).toEqual(['198.19.1.0/24', '198.19.3.0/24']);
    // A reservation covering several subnets blocks all of them.
    expect(freeSubnets(config, [parseIpv4Net('198.19.0.0/23')]).map(formatIpv4Net)).toEqual(['198.19.2.0/24', '198.19.3.0/24']);
  });
  it('knows which leases fit the config', () => {
    expect(fitsConfig(config, parseIpv4Net('198.19.2.0/24'))).toBe(true);
    expect(fitsConfig(config, parseIpv4Net('198.19.0.0/24'))).toBe(false); // below SubnetMin
    expect(fitsConfig(config, parseIpv4Net('198.19.2.0/25'))).toBe(false);
    expect(fitsConfig(config, parseIpv4Net('198.18.2.0/24'))).toBe(false);
  });
});

describe('subnet file', () => {
  it('writes what docker integration reads', () => {
    const text = formatSubnetFile({ network: parseIpv4Net('198.19.0.0/16'), subnet: parseIpv4Net('198.19.5.0/24'), mtu: 1472, ipMasq: true });
    expect(text).toBe('FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.5.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n');
    expect(parseEnvFile(text)).toEqual({ FLANNEL_NETWORK: '198.19.0.0/16', FLANNEL_SUBNET: '198.19.5.1/24', FLANNEL_MTU: '1472', FLANNEL_IPMASQ: 'true' });
    expect(parseIpv4('198.19.5.1')).toBe(0xc6130501);
  });
});
