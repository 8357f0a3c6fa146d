import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/subnet/subnet-file.js';
import { EtcdServer, freePort } from '../../testbed/etcd.js';
import { flanneldArgs } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';
import { httpGet } from '../helpers/http.js';

const run = promisify(execFile);
// Every daemon here uses the `alloc` backend on loopback: the control plane for real, no kernel changes.
const ALLOC_16 = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';

const etcd = useEtcd();
const dir = useTempDir('leases');
const startFlanneld = useFlanneld();

const newNetwork = (config = ALLOC_16) => etcd.network(config);
const subnetFilePath = (prefix: string, host: number) => dir.file(`${prefix.replace(/\W/g, '_')}-${host}.env`);

/** flanneld for host N (PublicIP 198.18.1.N on loopback); without a prefix it takes flanneld's default or the env's. */
function startDaemon(prefix: string, host: number, opts: { env?: NodeJS.ProcessEnv; args?: string[]; endpoint?: string } = {}) {
  const args = flanneldArgs({
    etcdEndpoints: opts.endpoint ?? etcd.endpoint,
    etcdPrefix: prefix || undefined,
    iface: 'lo',
    publicIp: `198.18.1.${host}`,
    subnetFile: subnetFilePath(prefix, host),
  });
  return startFlanneld([...args, ...(opts.args ?? [])], { env: opts.env });
}

async function subnetFile(prefix: string, host: number): Promise<Record<string, string>> {
  return parseEnvFile(await readFile(subnetFilePath(prefix, host), 'utf8'));
}

async function leases(prefix: string, server = etcd): Promise<Record<string, string>> {
  const all = await server.dump(`${prefix}/subnets/`);
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k.slice(`${prefix}/subnets/`.length), v]));
}

describe('subnet leases on a real etcd', () => {
  it('gives two hosts distinct /24s, stored as flannel stores them', async () => {
    const prefix = await newNetwork();
    const [a, b] = [startDaemon(prefix, 1), startDaemon(prefix, 2)];
    await Promise.all([a.waitForEvent('subnet-file-written'), b.waitForEvent('subnet-file-written')]);
    const [fa, fb] = [await subnetFile(prefix, 1), await subnetFile(prefix, 2)];
    expect(fa.FLANNEL_NETWORK).toBe('198.19.0.0/16');
    expect(fa.FLANNEL_SUBNET).toMatch(/^198\.19\.\d+\.1\/24$/);
    expect(fa.FLANNEL_SUBNET).not.toBe(fb.FLANNEL_SUBNET);
    expect(fa.FLANNEL_IPMASQ).toBe('false');
    const stored = await leases(prefix);
    const keyA = fa.FLANNEL_SUBNET.replace('.1/24', '.0-24');
    expect(JSON.parse(stored[keyA])).toEqual({ PublicIP: '198.18.1.1', BackendType: 'alloc' });
    expect(Object.keys(stored)).toHaveLength(2);
    // The key is attached to an etcd lease with a 24 h TTL.
    // Lease ids are 64-bit: read them as text (`-w fields`), JSON numbers would lose precision.
    const out = await etcd.ctl(['get', `${prefix}/subnets/${keyA}`, '-w', 'fields']);
    const leaseId = BigInt(/"Lease" : (\d+)/.exec(out)![1]).toString(16);
    const ttl = await etcd.ctl(['lease', 'timetolive', leaseId]);
    const granted = Number(/granted with TTL\((\d+)s\)/.exec(ttl)?.[1]);
    expect(granted).toBe(86400);
  });

  it('a restart reuses the lease, and SIGTERM exits 0 leaving the lease in etcd', async () => {
    const prefix = await newNetwork();
    const first = startDaemon(prefix, 7);
    await first.waitForEvent('subnet-file-written');
    const before = (await subnetFile(prefix, 7)).FLANNEL_SUBNET;
    expect((await first.stop('SIGTERM')).code).toBe(0);
    expect(Object.keys(await leases(prefix))).toEqual([before.replace('.1/24', '.0-24')]);
    const second = startDaemon(prefix, 7);
    await second.waitForEvent('subnet-file-written');
    expect((await subnetFile(prefix, 7)).FLANNEL_SUBNET).toBe(before);
    expect(Object.keys(await leases(prefix))).toHaveLength(1);
  });

  it('asks for the previous subnet file\'s subnet when its own lease is gone', async () => {
    const prefix = await newNetwork();
    const first = startDaemon(prefix, 8);
    await first.waitForEvent('subnet-file-written');
    const before = (await subnetFile(prefix, 8)).FLANNEL_SUBNET;
    await first.stop('SIGTERM');
    await etcd.ctl(['del', `${prefix}/subnets/`, '--prefix']);
    const second = startDaemon(prefix, 8);
    await second.waitForEvent('subnet-file-written');
    expect((await subnetFile(prefix, 8)).FLANNEL_SUBNET).toBe(before);
  });

  it('with a short TTL, a dead host\'s lease expires and frees its subnet', async () => {
    const prefix = await newNetwork();
    const d = startDaemon(prefix, 9, { env: { FLANNELD_SUBNET_LEASE_TTL: '4' } });
    await d.waitForEvent('subnet-file-written');
    expect(Object.keys(await leases(prefix))).toHaveLength(1);
    await d.stop('SIGKILL'); // no renewals any more
    await waitFor('the lease to expire', async () => Object.keys(await leases(prefix)).length === 0, 15_000);
  });

  it('a lost lease is taken back on the subnet held last, even with no subnet file to say which', async () => {
    const prefix = await newNetwork();
    const d = startDaemon(prefix, 10, { env: { FLANNELD_RETRY_INTERVAL_MS: '200' } });
    await d.waitForEvent('subnet-file-written');
    const [key] = Object.keys(await leases(prefix));
    // What a host started without a subnet file knows: only what it holds. 1 in 254 for a random pick.
    await rm(subnetFilePath(prefix, 10));
    await etcd.ctl(['del', `${prefix}/subnets/${key}`]);
    await d.waitForEvent('lease-lost');
    await waitFor('the lease acquired again', async () => d.events('lease-acquired').length === 2);
    expect(Object.keys(await leases(prefix))).toEqual([key]);
    expect(JSON.parse((await leases(prefix))[key]).PublicIP).toBe('198.18.1.10');
    expect(d.events('lease-moved')).toEqual([]);
    expect(d.running).toBe(true);
  });

  it('a host whose subnet another host took moves, saying from where to where, and rewrites the subnet file', async () => {
    const prefix = await newNetwork();
    const metricsPort = await freePort();
    const d = startDaemon(prefix, 12, { env: { FLANNELD_RETRY_INTERVAL_MS: '200' }, args: ['--metrics-port', String(metricsPort), '--healthz-ip', '127.0.0.1'] });
    await d.waitForEvent('subnet-file-written');
    const before = (await subnetFile(prefix, 12)).FLANNEL_SUBNET;
    const [key] = Object.keys(await leases(prefix));
    await etcd.put(`${prefix}/subnets/${key}`, '{"PublicIP":"198.18.1.13"}');
    const moved = await d.waitForEvent('lease-moved');
    const from = key.replace('-', '/');
    expect(moved.from).toBe(from);
    expect(moved.to).not.toBe(from);
    expect(moved.msg).toMatch(/restart docker/);
    await waitFor('the subnet file to follow', async () => (await subnetFile(prefix, 12)).FLANNEL_SUBNET !== before);
    expect((await subnetFile(prefix, 12)).FLANNEL_SUBNET).toBe(`${String(moved.to).replace(/\.0\//, '.1/')}`);
    const metrics = (await httpGet(metricsPort, '/metrics')).body;
    expect(metrics).toMatch(/^flannel_lease_moves_total 1$/m);
  });

  it('renews before expiry', async () => {
    const prefix = await newNetwork();
    const d = startDaemon(prefix, 11, { env: { FLANNELD_SUBNET_LEASE_TTL: '4' } });
    await d.waitForEvent('subnet-file-written');
    const firstExpiry = Date.parse(String((await d.waitForEvent('lease-acquired')).expiration));
    await d.waitForEvent('lease-renewed', {}, 10_000);
    // Survives past its first TTL (and etcd's expiry sweep) thanks to renewals.
    await waitFor('the first TTL to run out', async () => Date.now() > firstExpiry + 2_000, 10_000);
    expect(Object.keys(await leases(prefix))).toHaveLength(1);
  });

  it('a full network gives the extra host a clear exhaustion error and it keeps retrying', async () => {
    // Room for exactly 4 subnets: 198.19.0.0/22 in /24s, starting at the first one.
    const prefix = await newNetwork('{"Network":"198.19.0.0/22","SubnetLen":24,"SubnetMin":"198.19.0.0","Backend":{"Type":"alloc"}}');
    const four = [1, 2, 3, 4].map((h) => startDaemon(prefix, 20 + h));
    await Promise.all(four.map((d) => d.waitForEvent('subnet-file-written')));
    const fifth = startDaemon(prefix, 25, { env: { FLANNELD_RETRY_INTERVAL_MS: '300' } });
    const first = await fifth.waitForEvent('lease-acquire-failed', { reason: 'exhausted' });
    expect(first.msg).toContain('no free subnet left in 198.19.0.0/22 between 198.19.0.0 and 198.19.3.0');
    await waitFor('a second attempt', async () => fifth.events('lease-acquire-failed', { reason: 'exhausted' }).length >= 2);
    expect(fifth.running).toBe(true);
    // When a host leaves for good, the waiting one gets its subnet.
    await four[0].stop('SIGKILL');
    const freed = Object.entries(await leases(prefix)).find(([, v]) => JSON.parse(v).PublicIP === '198.18.1.21');
    await etcd.ctl(['del', `${prefix}/subnets/${freed![0]}`]);
    await fifth.waitForEvent('subnet-file-written', {}, 10_000);
  });

  it('--etcd-prefix and FLANNELD_ETCD_PREFIX keep networks apart in one etcd', async () => {
    const prefixA = await newNetwork('{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');
    const prefixB = await newNetwork('{"Network":"198.19.128.0/17","SubnetLen":25,"Backend":{"Type":"alloc"}}');
    const a = startDaemon(prefixA, 30);
    const b = startDaemon('', 31, { env: { FLANNELD_ETCD_PREFIX: prefixB } });
    await Promise.all([a.waitForEvent('subnet-file-written'), b.waitForEvent('subnet-file-written')]);
    expect((await subnetFile(prefixA, 30)).FLANNEL_NETWORK).toBe('198.19.0.0/16');
    expect((await subnetFile('', 31)).FLANNEL_NETWORK).toBe('198.19.128.0/17');
    expect((await subnetFile('', 31)).FLANNEL_SUBNET).toMatch(/\/25$/);
    expect(Object.values(await leases(prefixA)).map((v) => JSON.parse(v).PublicIP)).toEqual(['198.18.1.30']);
    expect(Object.values(await leases(prefixB)).map((v) => JSON.parse(v).PublicIP)).toEqual(['198.18.1.31']);
  });
});

describe('across an etcd restart', () => {
  // A server of its own: it is killed, and the daemon's watch on it is counted.
  const own = useEtcd();

  it('keeps its lease across an etcd restart and renews once etcd is back', async () => {
    const prefix = await own.network(ALLOC_16);
    const d = startDaemon(prefix, 40, { endpoint: own.endpoint, env: { FLANNELD_SUBNET_LEASE_TTL: '8', FLANNELD_RETRY_INTERVAL_MS: '500' } });
    await d.waitForEvent('subnet-file-written');
    // Fully started (its peer watch is the last step): an etcd outage is from then on something it rides out.
    await waitFor('flanneld to watch the subnets', async () => (await own.metric('etcd_debugging_mvcc_watcher_total')) >= 1);
    const subnet = (await subnetFile(prefix, 40)).FLANNEL_SUBNET;
    await own.kill();
    await d.waitForEvent('lease-renew-failed', {}, 15_000);
    const down = d.mark();
    await own.launch();
    await d.waitForEvent('lease-renewed', {}, { after: down, timeoutMs: 15_000 });
    expect(d.running).toBe(true);
    expect(Object.keys(await leases(prefix, own))).toEqual([subnet.replace('.1/24', '.0-24')]);
    expect((await subnetFile(prefix, 40)).FLANNEL_SUBNET).toBe(subnet);
  });
});

describe('etcd over TLS with client certificates', () => {
  // A server of its own: this one needs certificates made by the test first.
  let tlsEtcd: EtcdServer | undefined;
  const certs = useTempDir('certs');

  afterAll(async () => {
    await tlsEtcd?.stop();
  });

  it('leases a subnet through a TLS etcd that requires a client certificate', async () => {
    const ssl = (...args: string[]) => run('openssl', args, { cwd: certs.path });
    await ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=flannel-ts test CA');
    for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']]) {
      await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      await run('sh', ['-c', `printf '%s\n' '${ext}' > ${name}.ext`], { cwd: certs.path });
      await ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
    }
    tlsEtcd = await EtcdServer.start({ tls: { caFile: certs.file('ca.crt'), certFile: certs.file('server.crt'), keyFile: certs.file('server.key') } });
    const prefix = await tlsEtcd.network(ALLOC_16);
    const tlsArgs = ['--etcd-cafile', certs.file('ca.crt'), '--etcd-certfile', certs.file('client.crt'), '--etcd-keyfile', certs.file('client.key')];
    const d = startDaemon(prefix, 50, { endpoint: tlsEtcd.endpoint, args: tlsArgs });
    await d.waitForEvent('subnet-file-written');
    const stored = await tlsEtcd.dump(`${prefix}/subnets/`);
    expect(Object.values(stored).map((v) => JSON.parse(v).PublicIP)).toEqual(['198.18.1.50']);
    // Without the client certificate the same etcd refuses us, and we say so.
    const refused = startDaemon(prefix, 51, { endpoint: tlsEtcd.endpoint, args: ['--etcd-cafile', certs.file('ca.crt')], env: { FLANNELD_ETCD_STARTUP_TIMEOUT_MS: '2000' } });
    const result = await refused.wait(30_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/flanneld: cannot reach etcd at https:\/\/127\.0\.0\.1/);
  });
});
