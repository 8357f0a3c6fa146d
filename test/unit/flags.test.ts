import { describe, expect, it } from 'vitest';
import { envName, helpText, parseFlags } from '../../src/cli/flags.js';
import { UsageError } from '../../src/errors.js';

describe('flags', () => {
  it('has flannel defaults', () => {
    const o = parseFlags([], {});
    expect(o.etcdEndpoints).toEqual(['http://127.0.0.1:2379']);
    expect(o.etcdPrefix).toBe('/coreos.com/network');
    expect(o.subnetFile).toBe('/run/flannel/subnet.env');
    expect(o.ipMasq).toBe(false);
    expect(o.subnetLeaseRenewMargin).toBe(60);
    expect(o.antiSpoofing).toBe(true);
  });
  it('accepts Go flag syntax: -flag, --flag=value, --flag value, bare bools', () => {
    const o = parseFlags(['-etcd-prefix', '/a', '--subnet-file=/tmp/x.env', '-ip-masq', '--iface', 'eth1', '-iface=198.18.0.1', '--anti-spoofing=false'], {});
    expect([o.etcdPrefix, o.subnetFile, o.ipMasq, o.iface, o.antiSpoofing]).toEqual(['/a', '/tmp/x.env', true, ['eth1', '198.18.0.1'], false]);
  });
  it('flag beats environment beats default', () => {
    const env = { FLANNELD_ETCD_PREFIX: '/coreos.com/network2', FLANNELD_IP_MASQ: 'true', FLANNELD_ETCD_ENDPOINTS: 'http://198.18.0.254:2379,http://198.18.0.253:2379' };
    const fromEnv = parseFlags([], env);
    expect([fromEnv.etcdPrefix, fromEnv.ipMasq, fromEnv.etcdEndpoints]).toEqual(['/coreos.com/network2', true, ['http://198.18.0.254:2379', 'http://198.18.0.253:2379']]);
    expect(parseFlags(['--etcd-prefix=/flag'], env).etcdPrefix).toBe('/flag');
  });
  it('maps flag names to FLANNELD_* like flannel', () => {
    expect(envName('etcd-prefix')).toBe('FLANNELD_ETCD_PREFIX');
    expect(envName('subnet-lease-renew-margin')).toBe('FLANNELD_SUBNET_LEASE_RENEW_MARGIN');
  });
  it('rejects unknown flags, missing values and bad values with a UsageError', () => {
    expect(() => parseFlags(['--etcd-prefx', '/a'], {})).toThrow(/unknown flag: --etcd-prefx/);
    expect(() => parseFlags(['--etcd-prefix'], {})).toThrow(UsageError);
    expect(() => parseFlags(['--subnet-lease-renew-margin=0'], {})).toThrow(/from 1 to 1439/);
    expect(() => parseFlags(['--ip-masq=maybe'], {})).toThrow(/expected true or false/);
    expect(() => parseFlags([], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '2000' })).toThrow(/FLANNELD_SUBNET_LEASE_RENEW_MARGIN/);
  });
  it('keeps positional arguments for subcommands', () => {
    expect(parseFlags(['leases', '--etcd-prefix', '/x'], {}).args).toEqual(['leases']);
  });
  it('documents every flag with its environment variable', () => {
    const help = helpText('0.0.0');
    for (const name of ['--etcd-endpoints', 'FLANNELD_ETCD_PREFIX', '--iface', '--public-ip', '--subnet-file', '--ip-masq', 'FLANNELD_SUBNET_LEASE_RENEW_MARGIN']) expect(help).toContain(name);
  });
});
