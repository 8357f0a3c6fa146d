import { beforeAll, describe, expect, it } from 'vitest';
import { etcdOnSwitch, freePort } from '../../testbed/etcd.js';
import { flanneldArgs, lastLine, runFlanneld } from '../../testbed/flanneld.js';
import { useEtcd, useFlanneld, useTempDir, useTestbed } from '../helpers/fixtures.js';

// Every flanneld here runs in a host namespace of a test bed (etcd on its switch): a config that wrongly got through
// validation makes its devices there, never on this machine. Configs that pass validation use the alloc backend.
const ALLOC = '{"Network": "198.19.0.0/16", "Backend": {"Type": "alloc"}}';
const bed = useTestbed('bad');
const etcd = useEtcd(etcdOnSwitch(bed));
const dir = useTempDir('bad');
const startFlanneld = useFlanneld();
let host: string;

beforeAll(async () => {
  host = await bed.addHost('h1', '198.18.0.1');
});

function args(prefix: string, extra: string[] = []): string[] {
  // `--iface` may be repeated (first match wins), so tests that pass their own must not get `lo` as well.
  const iface = extra.includes('--iface') ? undefined : 'lo';
  const subnetFile = dir.file(`${prefix.replaceAll('/', '_')}.env`);
  return [...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface, publicIp: '198.18.2.1', subnetFile }), ...extra];
}

/**
 * Runs flanneld against a network whose config is `config`; asserts exit 1, one error line, etcd unchanged, and no
 * device of flanneld's (flannel0, flannel.1, ...) left in the host.
 */
async function expectRejected(config: string | undefined, message: RegExp, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const prefix = await etcd.network(config);
  const before = await etcd.dump(prefix);
  const result = await runFlanneld(args(prefix, extra), { env, netns: host, timeoutMs: 40_000 });
  expect(result.code).toBe(1);
  expect(lastLine(result.stderr)).toMatch(/^flanneld: /);
  expect(lastLine(result.stderr)).toMatch(message);
  expect(await etcd.dump(prefix)).toEqual(before);
  expect(await bed.ip(host, '-o', 'link', 'show')).not.toMatch(/^\d+: flannel/m);
}

describe('bad input: one line, exit 1, etcd untouched', () => {
  it('malformed JSON config', () => expectRejected('{"Network": "198.19.0.0/16"', /network config is not valid JSON/));
  it('Network missing', () => expectRejected('{"SubnetLen": 24}', /no "Network"/));
  it('Network not an IPv4 CIDR', () => expectRejected('{"Network": "198.19.0.0/33"}', /"Network" is not an IPv4 CIDR/));
  it('SubnetLen not larger than the prefix', () => expectRejected('{"Network": "198.19.0.0/16", "SubnetLen": 12}', /SubnetLen" 12 is too short/));
  it('SubnetLen above 30', () => expectRejected('{"Network": "198.19.0.0/16", "SubnetLen": 31}', /30 or less/));
  it('SubnetMin outside Network', () => expectRejected('{"Network": "198.19.0.0/16", "SubnetMin": "198.18.0.0"}', /SubnetMin" 198.18.0.0 is not inside/));
  it('SubnetMax outside Network', () => expectRejected('{"Network": "198.19.0.0/16", "SubnetMax": "198.20.0.0"}', /SubnetMax" 198.20.0.0 is not inside/));
  it('SubnetMin and SubnetMax reversed', () => expectRejected('{"Network": "198.19.0.0/16", "SubnetMin": "198.19.9.0", "SubnetMax": "198.19.3.0"}', /is above "SubnetMax"/));
  it('unknown Backend.Type', () => expectRejected('{"Network": "198.19.0.0/16", "Backend": {"Type": "carrier-pigeon"}}', /unknown backend type: carrier-pigeon/));
  // Backend keys are checked before the backend touches the kernel: no flannel.1 appears in the host.
  it('vxlan VNI of the wrong type', () => expectRejected('{"Network": "198.19.0.0/16", "Backend": {"Type": "vxlan", "VNI": "1"}}', /"Backend.VNI" must be a VXLAN network identifier \(0-16777215\), got "1"/));
  it('vxlan MTU too small', () => expectRejected('{"Network": "198.19.0.0/16", "Backend": {"Type": "vxlan", "MTU": 60}}', /"Backend.MTU" 60 leaves no room/));
  it('--iface naming no interface', () => expectRejected(ALLOC, /no interface matches --iface nosuchif0/, ['--iface', 'nosuchif0']));
  it('--iface naming no address', () => expectRejected(ALLOC, /no interface matches --iface 198.18.77.77/, ['--iface', '198.18.77.77']));
  it('unknown flag', () => expectRejected(undefined, /unknown flag: --etcd-prefixx/, ['--etcd-prefixx', '/x']));
  it('a testing aid out of range, or not one of its values', async () => {
    await expectRejected(ALLOC, /^flanneld: invalid value "-5" for FLANNELD_RETRY_INTERVAL_MS: expected a whole number from 1 to 3600000$/, [], { FLANNELD_RETRY_INTERVAL_MS: '-5' });
    await expectRejected(ALLOC, /^flanneld: invalid value "loud" for FLANNELD_LOG_LEVEL: expected one of trace, debug, info, warn, error, fatal, silent$/, [], { FLANNELD_LOG_LEVEL: 'loud' });
  });
  it('unreadable TLS files', async () => {
    await expectRejected(ALLOC, /cannot read etcd CA file .*missing-ca\.crt: ENOENT/, ['--etcd-cafile', dir.file('missing-ca.crt')]);
    // root reads mode-000 files, so a directory stands in for an unreadable key file.
    await expectRejected(ALLOC, /cannot read etcd key file .*: EISDIR/, ['--etcd-keyfile', dir.path]);
  });
  it('subnet file directory not writable', () =>
    expectRejected(ALLOC, /cannot write subnet file .*: ENOTDIR/, ['--subnet-file', '/dev/null/flannel/subnet.env']));
  it('etcd unreachable: gives up after bounded retries naming the endpoints', async () => {
    const port = await freePort();
    // The retry bound (default 10 s) shortened, as a test may: the give-up path is the same.
    const d = startFlanneld(flanneldArgs({ etcdEndpoints: `http://127.0.0.1:${port}`, iface: 'lo', subnetFile: dir.file('unreach.env') }), {
      env: { FLANNELD_ETCD_STARTUP_TIMEOUT_MS: '1500' },
      netns: host,
    });
    const result = await d.wait(30_000);
    expect(result.code).toBe(1);
    expect(d.events('etcd-unreachable').length).toBeGreaterThanOrEqual(1);
    expect(lastLine(result.stderr)).toMatch(new RegExp(`^flanneld: cannot reach etcd at http://127\\.0\\.0\\.1:${port}`));
  });
});

describe('tolerated input', () => {
  it('a lease value that is not JSON is skipped with a warning, never fatal', async () => {
    const prefix = await etcd.network(ALLOC);
    const key = `${prefix}/subnets/198.19.200.0-24`;
    await etcd.put(key, 'this is not json');
    const d = startFlanneld(args(prefix), { netns: host });
    await d.waitForEvent('subnet-file-written');
    const [warning] = d.events('lease-value-invalid', { key });
    expect(warning?.msg).toBe('skipping lease whose value is not valid flannel lease JSON');
    expect(d.running).toBe(true);
    expect(await etcd.get(key)).toBe('this is not json');
  });
  it('an unknown FLANNELD_* variable (a typo) is a warning naming it; the daemon starts and keeps running', async () => {
    const prefix = await etcd.network(ALLOC);
    const d = startFlanneld(args(prefix), { env: { FLANNELD_ETCD_PREFX: '/x' }, netns: host });
    await d.waitForEvent('subnet-file-written');
    const warnings = d.events('flag-warning').filter((e) => String(e.msg).includes('FLANNELD_ETCD_PREFX'));
    expect(warnings).toEqual([expect.objectContaining({ level: 40, msg: 'unknown environment variable FLANNELD_ETCD_PREFX is ignored (no flag of that name)' })]);
    // The typo changed nothing: the lease is under --etcd-prefix.
    expect(Object.keys(await etcd.dump(`${prefix}/subnets/`))).toHaveLength(1);
    expect(d.running).toBe(true);
  });
  it('waits for a missing config, naming the key, then starts when it appears', async () => {
    const prefix = await etcd.network();
    const d = startFlanneld(args(prefix), { netns: host });
    const waiting = await d.waitForEvent('waiting-for-config', { key: `${prefix}/config` });
    expect(waiting.msg).toContain(`waiting for network config at ${prefix}/config`);
    await etcd.put(`${prefix}/config`, ALLOC);
    await d.waitForEvent('subnet-file-written');
  });
});
