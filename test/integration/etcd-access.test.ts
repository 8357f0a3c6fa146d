import { beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../testbed/etcd.js';
import { flanneldArgs, lastLine, runFlanneld } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';
import { httpGet } from '../helpers/http.js';

// An etcd with authentication on, and one user per situation: each role covers only its own prefix.
const ALLOC = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';
const etcd = useEtcd();
const dir = useTempDir('access');
const startFlanneld = useFlanneld();

beforeAll(async () => {
  for (const p of ['/acc', '/accro', '/accrun']) await etcd.put(`${p}/network/config`, ALLOC);
  await etcd.enableAuth('rootpw', [
    { name: 'flannel', password: 'fpw', grants: [{ perm: 'readwrite', key: '/acc/', prefix: true }] },
    { name: 'ro', password: 'ropw', grants: [{ perm: 'read', key: '/accro/', prefix: true }] },
    {
      name: 'runner',
      password: 'rpw',
      grants: [
        { perm: 'read', key: '/accrun/', prefix: true },
        { perm: 'readwrite', key: '/accrun/network/subnets/', prefix: true },
      ],
    },
  ]);
});

function args(prefix: string, user: string | undefined, password: string, host: number, extra: string[] = []): string[] {
  return [
    ...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: `${prefix}/network`, iface: 'lo', publicIp: `198.18.7.${host}`, subnetFile: dir.file(`${host}.env`) }),
    ...(user ? ['--etcd-username', user, '--etcd-password', password] : []),
    ...extra,
  ];
}

describe('etcd refusing us at startup: one line naming the user and the key, exit 1 at once', () => {
  it('a wrong password', async () => {
    const { code, stderr } = await runFlanneld(args('/acc', 'flannel', 'wrong', 1));
    expect(code).toBe(1);
    expect(stderr, 'an unreachable etcd is retried at startup; a refusal is not retried at all').not.toContain('"event":"etcd-unreachable"');
    const last = lastLine(stderr);
    expect(last).toMatch(/^flanneld: etcd rejected the credentials of user "flannel" to read \/acc\/network\/config \(.*authentication failed/);
    expect(stderr.split('\n').filter((l) => l.includes('rejected the credentials'))).toHaveLength(1);
  });

  it('no user name where etcd requires one', async () => {
    const { code, stderr } = await runFlanneld(args('/acc', undefined, '', 2));
    expect(code).toBe(1);
    expect(lastLine(stderr)).toBe('flanneld: etcd requires authentication to read /acc/network/config: set --etcd-username and --etcd-password');
  });

  it('a read-only role: the write of the lease is refused, and the etcd lease granted for it is revoked', async () => {
    const leasesBefore = await etcd.ctl(['lease', 'list']);
    const { code, stderr } = await runFlanneld(args('/accro', 'ro', 'ropw', 3));
    expect(code).toBe(1);
    expect(stderr).not.toContain('"event":"etcd-unreachable"');
    expect(lastLine(stderr)).toMatch(
      /^flanneld: etcd denied user "ro" permission to write \/accro\/network\/subnets\/198\.19\.\d+\.0-24 \(etcdserver: permission denied\)$/,
    );
    expect(stderr.split('\n').filter((l) => l.includes('permission denied'))).toHaveLength(1);
    expect(await etcd.ctl(['lease', 'list'])).toBe(leasesBefore);
    expect(await etcd.dump('/accro/network/subnets/')).toEqual({});
  });
});

describe('etcd refusing a running daemon', () => {
  it('reports it once (log, metric, /readyz 503 with the reason), keeps the network, and recovers when the role is fixed', async () => {
    const [healthz, metrics] = [await freePort(), await freePort()];
    const d = startFlanneld(
      args('/accrun', 'runner', 'rpw', 4, ['--healthz-ip', '127.0.0.1', '--healthz-port', String(healthz), '--metrics-port', String(metrics)]),
      { env: { FLANNELD_SUBNET_LEASE_TTL: '12', FLANNELD_RETRY_INTERVAL_MS: '300' } },
    );
    await d.waitForEvent('subnet-file-written');
    expect((await httpGet(healthz, '/readyz')).status).toBe(200);
    await etcd.ctl(['role', 'revoke-permission', 'runner', '/accrun/network/subnets/', '--prefix=true']);
    // The renewal, due 6 s after startup, is refused.
    const denied = await d.waitForEvent('etcd-access-denied', { loop: 'renewal' }, 15_000);
    expect(denied.user).toBe('runner');
    expect(denied.key).toMatch(/^\/accrun\/network\/subnets\/198\.19\.\d+\.0-24$/);
    const ready = await httpGet(healthz, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/^flanneld is not ready yet: etcd denied user "runner" permission to write \/accrun\/network\/subnets\//);
    expect((await httpGet(healthz, '/healthz')).status).toBe(200);
    await waitFor('retries of the renewal', async () => d.events('lease-renew-failed').length >= 3);
    expect(d.events('etcd-access-denied')).toHaveLength(1);
    expect(Number(/^flannel_etcd_errors_total\{kind="denied"\} (\d+)$/m.exec((await httpGet(metrics, '/metrics')).body)?.[1])).toBeGreaterThanOrEqual(3);

    await etcd.ctl(['role', 'grant-permission', 'runner', 'readwrite', '/accrun/network/subnets/', '--prefix=true']);
    await d.waitForEvent('etcd-access-restored', { loop: 'renewal' }, 10_000);
    await waitFor('/readyz 200 again', async () => (await httpGet(healthz, '/readyz')).status === 200);
    // The network was never taken down for it.
    expect([...d.events('network-restarted'), ...d.events('lease-lost')]).toEqual([]);
  });

  it('after an etcd restart with auth on (tokens die with it), the peer watch goes on or is re-created, and sees new peers', async () => {
    const d = startFlanneld(args('/acc', 'flannel', 'fpw', 5), { env: { FLANNELD_RETRY_INTERVAL_MS: '300' } });
    await d.waitForEvent('subnet-file-written');
    await etcd.kill();
    await etcd.launch();
    for (const n of [200, 201]) {
      await etcd.put(`/acc/network/subnets/198.19.${n}.0-24`, `{"PublicIP":"198.18.7.${n}"}`);
      await d.waitForEvent('peer-added', { subnet: `198.19.${n}.0/24` }, 20_000);
    }
    // Whether etcd cancels the watch for the dead token depends on which request reaches it first after the restart;
    // when it does, the watch is re-created (a cancel by compaction is tested in lease-watcher.test.ts).
    for (const lost of d.events('watch-lost')) expect(lost.msg).toMatch(/invalid auth token|did not answer|Connection dropped/);
  });
});
