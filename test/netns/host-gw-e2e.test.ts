import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flanneldArgs, lastLine, runFlanneld } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { OverlayCluster, leaseOf, type OverlayHost } from '../../testbed/overlay.js';
import { pingThroughRestart } from '../../testbed/restart-probe.js';
import { useTempDir } from '../helpers/fixtures.js';

// Three hosts on one L2 segment running the real flanneld with the host-gw backend: no encapsulation, one kernel
// route per peer via its PublicIP. Each test starts from these three (a late joiner leaves again in its own test),
// so any of them runs alone.

const dir = useTempDir('hostgw');
let cluster: OverlayCluster;
let h1: OverlayHost, h2: OverlayHost, h3: OverlayHost;

// Leases stay below 198.19.200.0, so the hand-written peer leases at 198.19.25x.0 never collide with a host's.
beforeAll(async () => {
  cluster = await OverlayCluster.create('hgw', dir.path, '{"Network":"198.19.0.0/16","SubnetMax":"198.19.199.0","Backend":{"Type":"host-gw"}}');
  [h1, h2, h3] = await cluster.addHostsWithContainers(3);
});

afterAll(async () => {
  await cluster?.cleanup();
});

const routeOn = async (h: OverlayHost, subnet: string) => (await cluster.bed.ip(h.ns, 'route', 'show', subnet)).trim();
const expectedRoute = (peer: OverlayHost) => `${leaseOf(peer).subnet} via ${peer.underlayIp} dev eth0 proto 241`;

describe('host-gw backend between three hosts (real flanneld, etcd, kernel routes, netns)', () => {
  it('publishes flannel\'s lease value on distinct subnets', async () => {
    const leases = await cluster.etcd.dump(`${cluster.prefix}/subnets/`);
    for (const h of [h1, h2, h3]) {
      expect(leases[`${cluster.prefix}/subnets/${leaseOf(h).key}`]).toBe(JSON.stringify({ PublicIP: h.underlayIp, BackendType: 'host-gw' }));
    }
    expect(new Set([h1, h2, h3].map((h) => leaseOf(h).subnet)).size).toBe(3);
  });

  it('routes each peer\'s subnet via its PublicIP on eth0, with the interface MTU and no device of its own', async () => {
    for (const h of [h1, h2, h3]) {
      for (const peer of [h1, h2, h3].filter((p) => p !== h)) expect(await routeOn(h, leaseOf(peer).subnet)).toBe(expectedRoute(peer));
      expect(await readFile(h.subnetFile, 'utf8')).toContain('FLANNEL_MTU=1500\n');
      expect(await cluster.bed.ip(h.ns, 'link', 'show')).not.toMatch(/flannel/);
    }
  });

  it('containers on every pair of hosts reach each other', async () => {
    await cluster.expectAllReachable([h1, h2, h3]);
  });

  it('a host that joins later is reached without restarting the others; once its lease is removed, every other host drops its route', async () => {
    const h4 = await cluster.addHost('h4', 4);
    await cluster.addContainer(h4);
    await cluster.expectReachable(h1, h4);
    await cluster.expectReachable(h4, h2);

    const { subnet, key } = leaseOf(h4);
    await h4.daemon.stop('SIGKILL');
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/${key}`]);
    for (const h of [h1, h2, h3]) await waitFor(`${h.name} to drop h4's route`, async () => (await routeOn(h, subnet)) === '');
  });

  it('skips, with a clear log line, a peer whose PublicIP is not directly connected, and ignores other backends\' leases', async () => {
    await cluster.etcd.put(`${cluster.prefix}/subnets/198.19.250.0-24`, '{"PublicIP":"198.18.9.9","BackendType":"host-gw"}');
    await cluster.etcd.put(`${cluster.prefix}/subnets/198.19.251.0-24`, '{"PublicIP":"198.18.0.9","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:09"}}');
    await h1.daemon.waitForEvent('peer-not-directly-connected', { subnet: '198.19.250.0/24', publicIp: '198.18.9.9', iface: 'eth0' });
    await h1.daemon.waitForEvent('peer-ignored', { subnet: '198.19.251.0/24', backendType: 'vxlan' });
    expect(await routeOn(h1, '198.19.250.0/24')).toBe('');
    expect(await routeOn(h1, '198.19.251.0/24')).toBe('');
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/198.19.250.0-24`]);
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/198.19.251.0-24`]);
  });

  it('puts back, within the 10 s check, a route that went missing and one that was changed', async () => {
    await cluster.bed.ip(h1.ns, 'route', 'del', leaseOf(h2).subnet);
    await cluster.bed.ip(h1.ns, 'route', 'replace', leaseOf(h3).subnet, 'via', h2.underlayIp, 'dev', 'eth0');
    const restored = async () => (await routeOn(h1, leaseOf(h2).subnet)) === expectedRoute(h2) && (await routeOn(h1, leaseOf(h3).subnet)) === expectedRoute(h3);
    await waitFor('h1 to put both routes back', restored, 15_000);
    const repairs = h1.daemon.events('peers-repaired');
    expect(repairs.reduce((n, e) => n + Number(e.changed), 0)).toBe(2);
  });

  it('SIGTERM leaves the routes; the next start adopts them without touching one, and no ping is lost', async () => {
    await cluster.expectReachable(h2, h1);
    const stopMonitor = cluster.bed.monitor(h1.ns, 'route');
    const loss = await pingThroughRestart(cluster, h2, h1, h1, {
      readyEvent: 'peers-reconciled',
      whileDown: async () => {
        for (const peer of [h2, h3]) expect(await routeOn(h1, leaseOf(peer).subnet)).toBe(expectedRoute(peer));
      },
    });
    const events = await stopMonitor();
    expect(loss.sent).toBeGreaterThan(50);
    expect(loss.lost).toBe(0);
    expect(events.filter((l) => l.includes('proto 241'))).toEqual([]);
    expect(h1.daemon.events('peers-reconciled')[0]).toMatchObject({ peers: 2, changed: 0, removedStale: 0 });
  });

  it('a start reconciles: the route of a lease deleted while the host was down is removed, the others kept', async () => {
    await h3.daemon.stop('SIGKILL');
    await cluster.restartDaemon(h2, { whileDown: () => cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/${leaseOf(h3).key}`]).then(() => undefined) });
    expect(await h2.daemon.waitForEvent('peers-reconciled')).toMatchObject({ peers: 1, removedStale: 1 });
    expect(await routeOn(h2, leaseOf(h3).subnet)).toBe('');
    expect(await routeOn(h2, leaseOf(h1).subnet)).toBe(expectedRoute(h1));
    await cluster.expectReachable(h2, h1);
  });

  it('`flanneld teardown` deletes our routes in the Network and keeps the operator\'s; twice is fine', async () => {
    await h1.daemon.stop('SIGTERM');
    await cluster.bed.ip(h1.ns, 'route', 'add', '198.19.240.0/24', 'via', '198.18.0.2', 'dev', 'eth0');
    expect(await cluster.bed.ip(h1.ns, 'route', 'show', 'proto', '241')).not.toBe('');
    for (let i = 0; i < 2; i++) {
      const result = await runFlanneld(['teardown', '--subnet-file', h1.subnetFile], { netns: h1.ns });
      expect(result.code).toBe(0);
    }
    expect(await cluster.bed.ip(h1.ns, 'route', 'show', 'proto', '241')).toBe('');
    expect(await routeOn(h1, '198.19.240.0/24')).toBe('198.19.240.0/24 via 198.18.0.2 dev eth0');
  });

  it('refuses to start when --public-ip differs from the interface address (NAT), before touching etcd', async () => {
    const before = await cluster.etcd.dump(`${cluster.prefix}/subnets/`);
    const result = await runFlanneld(
      flanneldArgs({ etcdEndpoints: cluster.etcd.endpoint, etcdPrefix: cluster.prefix, iface: 'eth0', publicIp: '198.18.0.77', subnetFile: dir.file('nat.env') }),
      { netns: h1.ns },
    );
    expect(result.code).toBe(1);
    expect(lastLine(result.stderr)).toMatch(/^flanneld: host-gw cannot work behind NAT: --public-ip 198\.18\.0\.77 differs from eth0's address 198\.18\.0\.1/);
    expect(await cluster.etcd.dump(`${cluster.prefix}/subnets/`)).toEqual(before);
  });
});
