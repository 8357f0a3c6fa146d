import { describe, expect, it } from 'vitest';
import { freePort } from '../../testbed/etcd.js';
import { flanneldArgs } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';
import { httpGet } from '../helpers/http.js';

const etcd = useEtcd();
const dir = useTempDir('health');
const startFlanneld = useFlanneld();

describe('/healthz, /readyz and /metrics on a real daemon (alloc backend, real etcd)', () => {
  it('healthz is 200 while alive; readyz is 503 with the reason until the lease is held and the network runs; metrics describe lease, peers and faults', async () => {
    const prefix = await etcd.network();
    const [healthz, metrics] = [await freePort(), await freePort()];
    const d = startFlanneld([
      ...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp: '198.18.4.1', subnetFile: dir.file('subnet.env') }),
      '--healthz-ip', '127.0.0.1', '--healthz-port', String(healthz), '--metrics-port', String(metrics),
    ]);
    await d.waitForEvent('waiting-for-config');
    expect(await httpGet(healthz, '/healthz')).toEqual({ status: 200, body: 'flanneld is running\n' });
    expect(await httpGet(healthz, '/readyz')).toEqual({ status: 503, body: 'flanneld is not ready yet: waiting for etcd and the network config\n' });
    await etcd.put(`${prefix}/config`, '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');
    await etcd.put(`${prefix}/subnets/198.19.77.0-24`, '{"PublicIP":"198.18.4.2"}');
    await d.waitForEvent('subnet-file-written');
    expect(await httpGet(healthz, '/readyz')).toEqual({ status: 200, body: 'flanneld is ready\n' });
    expect(await httpGet(healthz, '/healthz')).toEqual({ status: 200, body: 'flanneld is running\n' });
    expect((await httpGet(healthz, '/nope')).status).toBe(404);

    await waitFor('the peer in metrics', async () => /^flannel_peers 1$/m.test((await httpGet(metrics, '/metrics')).body));
    const text = (await httpGet(metrics, '/metrics')).body;
    const expiry = Number(/^flannel_lease_expiry_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    expect(expiry * 1000).toBeGreaterThan(Date.now() + 23 * 3600 * 1000);
    expect(text).toMatch(/^flannel_lease_renewals_total 0$/m);
    expect(text).toMatch(/^flannel_lease_moves_total 0$/m);
    expect(text).toMatch(/^flannel_datapath_failures_total 0$/m);
    for (const kind of ['unavailable', 'denied', 'other']) expect(text).toMatch(new RegExp(`^flannel_etcd_errors_total\\{kind="${kind}"\\} 0$`, 'm'));
    for (const reason of ['outside_network', 'overlap']) expect(text).toMatch(new RegExp(`^flannel_leases_ignored\\{reason="${reason}"\\} 0$`, 'm'));

    // An overlapping lease is counted as soon as the watch sees it.
    await etcd.put(`${prefix}/subnets/198.19.77.128-25`, '{"PublicIP":"198.18.4.3"}');
    await waitFor('the overlap in metrics', async () => /^flannel_leases_ignored\{reason="overlap"\} 2$/m.test((await httpGet(metrics, '/metrics')).body));
  });

  /** A daemon (alloc backend) on `prefix` serving /healthz and /readyz; resolves once its subnet file is written. */
  async function readyDaemon(prefix: string, host: number, env: NodeJS.ProcessEnv = {}): Promise<{ readyz: () => Promise<{ status: number; body: string }> }> {
    const port = await freePort();
    const d = startFlanneld(
      [
        ...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp: `198.18.4.${host}`, subnetFile: dir.file(`${host}.env`) }),
        '--healthz-ip', '127.0.0.1', '--healthz-port', String(port),
      ],
      { env: { FLANNELD_RETRY_INTERVAL_MS: '300', ...env } },
    );
    await d.waitForEvent('subnet-file-written');
    return { readyz: () => httpGet(port, '/readyz') };
  }

  it('readyz is 503 while a lost lease cannot be re-acquired (the network is full), and 200 once it is', async () => {
    // Room for 4 subnets: ours and three others.
    const prefix = await etcd.network('{"Network":"198.19.0.0/22","SubnetLen":24,"SubnetMin":"198.19.0.0","Backend":{"Type":"alloc"}}');
    const { readyz } = await readyDaemon(prefix, 10);
    const [ownKey] = Object.keys(await etcd.dump(`${prefix}/subnets/`));
    const others = ['198.19.0.0-24', '198.19.1.0-24', '198.19.2.0-24', '198.19.3.0-24'].map((k) => `${prefix}/subnets/${k}`).filter((k) => k !== ownKey);
    for (const [i, key] of others.entries()) await etcd.put(key, `{"PublicIP":"198.18.4.${20 + i}"}`);
    // Another host takes our key: the lease is lost and no subnet is free.
    await etcd.put(ownKey, '{"PublicIP":"198.18.4.30"}');
    await waitFor('/readyz to say the lease was lost', async () => (await readyz()).status === 503);
    expect(await readyz()).toEqual({ status: 503, body: 'flanneld is not ready yet: the subnet lease was lost; acquiring a new one\n' });
    await etcd.ctl(['del', others[0]]);
    await waitFor('/readyz 200 on the freed subnet', async () => (await readyz()).status === 200);
  });

  it('readyz is 503 naming the expiry while etcd does not answer past the lease\'s TTL, and 200 once a renewal gets through', async () => {
    const prefix = await etcd.network('{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');
    // Renewed 2 s into each 4 s lease.
    const { readyz } = await readyDaemon(prefix, 11, { FLANNELD_SUBNET_LEASE_TTL: '4' });
    etcd.freeze(true);
    try {
      await waitFor('/readyz to say the lease expired', async () => (await readyz()).status === 503);
      expect((await readyz()).body).toMatch(/^flanneld is not ready yet: the subnet lease expired at \S+Z without a renewal \(is etcd reachable\?\)\n$/);
    } finally {
      etcd.freeze(false);
    }
    await waitFor('/readyz 200 after a renewal', async () => (await readyz()).status === 200);
  });
});
