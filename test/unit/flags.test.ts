import { describe, expect, it } from 'vitest';
import { envName, helpText, parseFlags } from '../../src/cli/flags.js';
import { UsageError } from '../../src/errors.js';

describe('flags', () => {
  it('has flannel defaults', () => {
    const o = parseFlags([], {});
    expect(o.etcdEndpoints).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
    expect(o.iptablesForwardRules).toBe(true);
    expect(o.udpFastpath).toBe('auto');
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
  it('accepts every flag of flannel that units pass, glog ones included', () => {
    const o = parseFlags(['-v=2', '--iface-regex', '^eth', '--iface-regex=198\\.18\\..*', '--iface-can-reach', '198.18.0.254', '--iptables-forward-rules=false', '--ip-masq-fully-random-disable', '--ip-blackhole-route', '-vmodule=main=3', '-log_backtrace_at=main.go:1', '-logtostderr', '-alsologtostderr=true', '-stderrthreshold=WARNING', '-log_dir=/var/log'], {});
    expect([o.v, o.ifaceRegex, o.ifaceCanReach, o.iptablesForwardRules, o.ipMasqFullyRandomDisable, o.ipBlackholeRoute]).toEqual([2, ['^eth', '198\\.18\\..*'], '198.18.0.254', false, true, true]);
    expect(parseFlags([], { FLANNELD_V: '1', FLANNELD_IPTABLES_FORWARD_RULES: 'false' })).toMatchObject({ v: 1, iptablesForwardRules: false });
  });
  it('refuses IPv6 and the Kubernetes subnet manager in one line, from a flag or a variable', () => {
    expect(() => parseFlags(['--public-ipv6', 'fc00::1'], {})).toThrow(/--public-ipv6: IPv6 is not supported by flannel-ts yet/);
    expect(() => parseFlags([], { FLANNELD_PUBLIC_IPV6: 'fc00::1' })).toThrow(/FLANNELD_PUBLIC_IPV6: IPv6 is not supported/);
    for (const flag of ['--kube-subnet-mgr', '--kube-api-url=https://198.18.0.254', '--kubeconfig-file=/x', '--kube-annotation-prefix=a', '--net-config-path=/x', '--set-node-network-unavailable=false']) {
      expect(() => parseFlags([flag], {})).toThrow(/takes its subnets from etcd/);
    }
  });
  it('checks the values of choice flags', () => {
    expect(parseFlags(['--udp-fastpath=off'], {}).udpFastpath).toBe('off');
    expect(() => parseFlags(['--udp-fastpath=fast'], {})).toThrow(/expected one of auto, on, off/);
    expect(() => parseFlags(['-stderrthreshold=LOUD'], {})).toThrow(UsageError);
  });
  it('reads the testing aids from the environment only, with their defaults, and checks them like flags', () => {
    expect(parseFlags([], {}).tuning).toEqual({
      subnetLeaseTtl: 86400,
      retryIntervalMs: 5000,
      etcdStartupTimeoutMs: 10000,
      logLevel: 'info',
      udpFastpathObject: '',
      udpFastpathAttach: 'auto',
    });
    const env = { FLANNELD_SUBNET_LEASE_TTL: '4', FLANNELD_RETRY_INTERVAL_MS: '300', FLANNELD_UDP_FASTPATH_ATTACH: 'tc', LOG_LEVEL: 'debug' };
    expect(parseFlags([], env).tuning).toMatchObject({ subnetLeaseTtl: 4, retryIntervalMs: 300, udpFastpathAttach: 'tc', logLevel: 'debug' });
    expect(parseFlags([], { ...env, FLANNELD_LOG_LEVEL: 'warn' }).tuning.logLevel).toBe('warn');
    expect(() => parseFlags([], { FLANNELD_RETRY_INTERVAL_MS: 'soon' })).toThrow('invalid value "soon" for FLANNELD_RETRY_INTERVAL_MS: expected a whole number from 1 to 3600000');
    expect(() => parseFlags([], { FLANNELD_SUBNET_LEASE_TTL: '0' })).toThrow(/FLANNELD_SUBNET_LEASE_TTL: expected a whole number from 1/);
    expect(() => parseFlags([], { FLANNELD_UDP_FASTPATH_ATTACH: 'xdp' })).toThrow('invalid value "xdp" for FLANNELD_UDP_FASTPATH_ATTACH: expected one of auto, tcx, tc');
    expect(() => parseFlags([], { LOG_LEVEL: 'loud' })).toThrow(/for LOG_LEVEL: expected one of trace, debug/);
    expect(() => parseFlags(['--retry-interval-ms=300'], {})).toThrow(/unknown flag: --retry-interval-ms/);
  });
  it('warns about FLANNELD_* variables no flag reads, and only about those', () => {
    const o = parseFlags([], { FLANNELD_IFACE: 'eth0', FLANNELD_ETCD_PREFX: '/x', FLANNELD_SUBNET_LEASE_TTL: '60', FLANNELD_LOG_LEVEL: 'debug', OTHER: '1' });
    expect(o.warnings).toEqual(['unknown environment variable FLANNELD_ETCD_PREFX is ignored (no flag of that name)']);
  });
  it('keeps refused and glog flags out of --help', () => {
    const help = helpText('0.0.0');
    for (const name of ['--kube-subnet-mgr', '--public-ipv6', '--vmodule']) expect(help).not.toContain(name);
    for (const name of ['--iface-regex', '--iface-can-reach', '--iptables-forward-rules', '--ip-masq-fully-random-disable', '--ip-blackhole-route', '--udp-fastpath']) expect(help).toContain(name);
  });
});
