import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlanneld } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { OverlayCluster, leaseOf, type OverlayHost } from '../../testbed/overlay.js';
import { pingThroughRestart } from '../../testbed/restart-probe.js';
import { useTempDir } from '../helpers/fixtures.js';

// Three hosts running the real flanneld with the vxlan backend over a real etcd, checked with the tools an operator
// would use: ip -d link, ip neigh, bridge fdb, ip route. Each test starts from these three (a late joiner leaves again
// in its own test, the teardown has a host of its own), so any of them runs alone.

const dir = useTempDir('vxlan');
let cluster: OverlayCluster;
let h1: OverlayHost, h2: OverlayHost, h3: OverlayHost;

// Leases stay below 198.19.200.0, so the hand-written peer leases at 198.19.25x.0 never collide with a host's.
beforeAll(async () => {
  cluster = await OverlayCluster.create('vx', dir.path, '{"Network":"198.19.0.0/16","SubnetMax":"198.19.199.0","Backend":{"Type":"vxlan"}}');
  [h1, h2, h3] = await cluster.addHostsWithContainers(3);
});

afterAll(async () => {
  await cluster?.cleanup();
});

const subnetOf = (h: OverlayHost) => leaseOf(h).subnet;
const leaseIpOf = (h: OverlayHost) => leaseOf(h).ip;
const keyOf = (h: OverlayHost) => leaseOf(h).key;
const ip = (h: OverlayHost, ...args: string[]) => cluster.bed.ip(h.ns, ...args);
const fdb = async (h: OverlayHost) => (await cluster.bed.exec(h.ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.1'])).stdout;

async function vtepMac(h: OverlayHost): Promise<string> {
  return /link\/ether (\S+)/.exec(await ip(h, 'link', 'show', 'flannel.1'))![1];
}

/** Everything `h` holds for `peer` on flannel.1: neighbour, FDB entry and route, as the tools print them. */
async function entriesFor(h: OverlayHost, peer: { subnet: string; leaseIp: string }) {
  return {
    neigh: (await ip(h, 'neigh', 'show', peer.leaseIp, 'dev', 'flannel.1')).trim(),
    route: (await ip(h, 'route', 'show', peer.subnet)).trim(),
    fdb: await fdb(h),
  };
}

const peerOf = (h: OverlayHost) => ({ subnet: subnetOf(h), leaseIp: leaseIpOf(h) });

async function expectProgrammed(h: OverlayHost, peer: OverlayHost): Promise<void> {
  const mac = await vtepMac(peer);
  const e = await entriesFor(h, peerOf(peer));
  expect(e.neigh).toBe(`${leaseIpOf(peer)} lladdr ${mac} PERMANENT`);
  expect(e.fdb).toContain(`${mac} dst ${peer.underlayIp} self permanent`);
  expect(e.route).toBe(`${subnetOf(peer)} via ${leaseIpOf(peer)} dev flannel.1 proto 241 onlink`);
}

async function expectNothingFor(h: OverlayHost, peer: { subnet: string; leaseIp: string }, mac: string): Promise<void> {
  const e = await entriesFor(h, peer);
  expect(e.neigh).toBe('');
  expect(e.route).toBe('');
  expect(e.fdb).not.toContain(mac);
}

describe('vxlan backend between three hosts (real flanneld, etcd, kernel VXLAN, netns)', () => {
  it('publishes flannel\'s lease value with each host\'s own VTEP MAC, on distinct subnets', async () => {
    const leases = await cluster.etcd.dump(`${cluster.prefix}/subnets/`);
    for (const h of [h1, h2, h3]) {
      const value = { PublicIP: h.underlayIp, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: await vtepMac(h) } };
      expect(leases[`${cluster.prefix}/subnets/${keyOf(h)}`]).toBe(JSON.stringify(value));
    }
    expect(new Set([h1, h2, h3].map(subnetOf)).size).toBe(3);
  });

  it('sets up flannel.1 as flannel does: VNI 1, local = eth0 address, no learning, MTU 1450, the lease address /32', async () => {
    for (const h of [h1, h2, h3]) {
      const link = await ip(h, '-d', 'link', 'show', 'flannel.1');
      expect(link).toContain('mtu 1450');
      expect(link).toMatch(new RegExp(`vxlan id 1 local ${h.underlayIp.replaceAll('.', '\\.')} dev eth0 .*dstport 8472 nolearning`));
      expect(await ip(h, '-o', '-4', 'addr', 'show', 'dev', 'flannel.1')).toContain(`inet ${leaseIpOf(h)}/32`);
      expect(await readFile(h.subnetFile, 'utf8')).toContain('FLANNEL_MTU=1450\n');
    }
  });

  it('programs a permanent neighbour, an FDB entry and an onlink route per peer, nothing for itself', async () => {
    for (const h of [h1, h2, h3]) {
      for (const peer of [h1, h2, h3].filter((p) => p !== h)) await expectProgrammed(h, peer);
      expect(await ip(h, 'route', 'show', subnetOf(h))).not.toContain('flannel.1');
    }
  });

  it('containers on every pair of hosts reach each other', async () => {
    await cluster.expectAllReachable([h1, h2, h3]);
  });

  it('a host that joins later is reached without restarting the others (an incompatible flannel.1 there is replaced, keeping its MAC); once its lease is removed, every other host drops its route, neighbour and FDB entry', async () => {
    const staleMac = '02:00:00:00:04:04';
    // Left by someone else: the wrong port, and learning on.
    const prepare = (ns: string) => cluster.bed.ip(ns, 'link', 'add', 'flannel.1', 'address', staleMac, 'type', 'vxlan', 'id', '1', 'dstport', '4789', 'dev', 'eth0');
    const h4 = await cluster.addHost('h4', 4, {}, { prepare });
    await cluster.addContainer(h4);
    expect(await h4.daemon.waitForEvent('vxlan-device-replaced')).toMatchObject({ device: 'flannel.1', reason: 'port 4789 instead of 8472' });
    expect(await ip(h4, '-d', 'link', 'show', 'flannel.1')).toMatch(/dstport 8472 nolearning/);
    expect(await vtepMac(h4)).toBe(staleMac);
    await cluster.expectReachable(h1, h4);
    await cluster.expectReachable(h4, h2);
    await expectProgrammed(h3, h4);

    const peer = peerOf(h4);
    await h4.daemon.stop('SIGKILL');
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/${keyOf(h4)}`]);
    for (const h of [h1, h2, h3]) {
      await waitFor(`${h.name} to drop h4`, async () => (await entriesFor(h, peer)).route === '');
      await expectNothingFor(h, peer, staleMac);
    }
  });

  it('ignores, with a log line, peer leases of another backend or without a usable VtepMAC', async () => {
    await cluster.etcd.put(`${cluster.prefix}/subnets/198.19.250.0-24`, '{"PublicIP":"198.18.0.9","BackendType":"host-gw"}');
    await cluster.etcd.put(`${cluster.prefix}/subnets/198.19.251.0-24`, '{"PublicIP":"198.18.0.9","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"not-a-mac"}}');
    await h1.daemon.waitForEvent('peer-ignored', { subnet: '198.19.250.0/24', backendType: 'host-gw' });
    await h1.daemon.waitForEvent('peer-ignored', { subnet: '198.19.251.0/24', backendType: 'vxlan' });
    expect(await ip(h1, 'route', 'show', '198.19.250.0/24')).toBe('');
    expect(await ip(h1, 'route', 'show', '198.19.251.0/24')).toBe('');
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/198.19.250.0-24`]);
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/198.19.251.0-24`]);
  });

  it('a peer whose VtepMAC or PublicIP changes gets its entries replaced; its removal removes all three', async () => {
    const key = `${cluster.prefix}/subnets/198.19.252.0-24`;
    const peer = { subnet: '198.19.252.0/24', leaseIp: '198.19.252.0' };
    const lease = (publicIp: string, mac: string) => JSON.stringify({ PublicIP: publicIp, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
    const holds = (h: OverlayHost, publicIp: string, mac: string) => async () => {
      const e = await entriesFor(h, peer);
      return e.neigh === `198.19.252.0 lladdr ${mac} PERMANENT` && e.fdb.includes(`${mac} dst ${publicIp} self permanent`) && e.route.includes('via 198.19.252.0 dev flannel.1');
    };
    await cluster.etcd.put(key, lease('198.18.0.9', '02:00:00:00:09:01'));
    await waitFor('h1 to program the peer', holds(h1, '198.18.0.9', '02:00:00:00:09:01'));
    await cluster.etcd.put(key, lease('198.18.0.9', '02:00:00:00:09:02'));
    await waitFor('h1 to follow the new VtepMAC', holds(h1, '198.18.0.9', '02:00:00:00:09:02'));
    expect(await fdb(h1)).not.toContain('02:00:00:00:09:01');
    await cluster.etcd.put(key, lease('198.18.0.10', '02:00:00:00:09:02'));
    await waitFor('h1 to follow the new PublicIP', holds(h1, '198.18.0.10', '02:00:00:00:09:02'));
    expect(await fdb(h1)).not.toContain('dst 198.18.0.9 ');
    await cluster.etcd.ctl(['del', key]);
    for (const h of [h1, h2]) {
      await waitFor(`${h.name} to drop the peer`, async () => (await entriesFor(h, peer)).route === '');
      await expectNothingFor(h, peer, '02:00:00:00:09:02');
    }
  });

  it('SIGTERM leaves flannel.1 and every entry; the next start adopts them: same VtepMAC, no route or neighbour touched, no ping lost', async () => {
    await cluster.expectReachable(h2, h1);
    const macBefore = await vtepMac(h1);
    const leaseBefore = await cluster.etcd.get(`${cluster.prefix}/subnets/${keyOf(h1)}`);
    const stopMonitor = cluster.bed.monitor(h1.ns, 'route', 'neigh');
    const loss = await pingThroughRestart(cluster, h2, h1, h1, {
      readyEvent: 'peers-reconciled',
      whileDown: async () => {
        expect(await ip(h1, '-d', 'link', 'show', 'flannel.1')).toContain('vxlan id 1');
        for (const peer of [h2, h3]) await expectProgrammed(h1, peer);
      },
    });
    const events = await stopMonitor();
    expect(loss.sent).toBeGreaterThan(50);
    expect(loss.lost).toBe(0);
    expect(await vtepMac(h1)).toBe(macBefore);
    expect(await cluster.etcd.get(`${cluster.prefix}/subnets/${keyOf(h1)}`)).toBe(leaseBefore);
    // Adoption writes nothing: not one route or neighbour of flannel.1 changed while flanneld restarted.
    expect(events.filter((l) => l.includes('flannel.1') || l.includes('proto 241'))).toEqual([]);
    expect(h1.daemon.events('peers-reconciled')[0]).toMatchObject({ peers: 2, changed: 0, removedStale: 0 });
  });

  it('a deleted flannel.1 is a network failure; the next start creates it again and peers follow its new VtepMAC', async () => {
    const oldMac = await vtepMac(h3);
    await ip(h3, 'link', 'del', 'flannel.1');
    await h3.daemon.waitForEvent('network-failed', { device: 'flannel.1' });
    await cluster.restartDaemon(h3);
    const newMac = await vtepMac(h3);
    expect(newMac).not.toBe(oldMac);
    await waitFor('h1 to follow h3\'s new VtepMAC', async () => (await entriesFor(h1, peerOf(h3))).neigh.includes(newMac));
    await expectProgrammed(h1, h3);
    expect(await fdb(h1)).not.toContain(oldMac);
    await cluster.expectReachable(h1, h3);
  });

  it('a start reconciles: entries for a lease deleted while the host was down are removed, the rest kept', async () => {
    const mac = await vtepMac(h3);
    const peer = peerOf(h3);
    await h3.daemon.stop('SIGKILL');
    await cluster.restartDaemon(h2, {
      whileDown: async () => {
        await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/${keyOf(h3)}`]);
        await expectProgrammed(h2, h3);
      },
    });
    const done = await h2.daemon.waitForEvent('peers-reconciled');
    expect(done).toMatchObject({ peers: 1, removedStale: 3 });
    await expectNothingFor(h2, peer, mac);
    await expectProgrammed(h2, h1);
    await cluster.expectReachable(h2, h1);
  });
});

describe('vxlan `flanneld teardown`', () => {
  // A host of its own on the same cluster: it has flannel.1 with its peers' entries, and is torn down.
  let t: OverlayHost;

  beforeAll(async () => {
    t = await cluster.addHost('t', 7);
    await t.daemon.waitForEvent('subnet-file-written');
    await waitFor('t to program its peers', async () => (await fdb(t)).includes(' dst '));
  });

  it('deletes flannel.* vxlan devices (their neighbours and FDB entries go with them) and our direct routes, keeps the operator\'s; twice is fine', async () => {
    await t.daemon.stop('SIGTERM');
    // A DirectRouting route of ours, and an operator's route inside the Network.
    await cluster.bed.ip(t.ns, 'route', 'add', '198.19.241.0/24', 'via', '198.18.0.2', 'dev', 'eth0', 'proto', '241');
    await cluster.bed.ip(t.ns, 'route', 'add', '198.19.240.0/24', 'via', '198.18.0.2', 'dev', 'eth0');
    expect(await ip(t, 'link', 'show', 'type', 'vxlan')).toContain('flannel.1');
    for (let i = 0; i < 2; i++) {
      const result = await runFlanneld(['teardown', '--subnet-file', t.subnetFile], { netns: t.ns });
      expect(result.code).toBe(0);
    }
    expect(await ip(t, 'link', 'show', 'type', 'vxlan')).toBe('');
    expect(await ip(t, 'route', 'show', 'proto', '241')).toBe('');
    expect(await ip(t, 'route', 'show', '198.19.240.0/24')).toContain('via 198.18.0.2 dev eth0');
    expect((await cluster.bed.exec(t.ns, ['bridge', 'fdb', 'show'])).stdout).not.toContain(' dst ');
  });
});

describe('vxlan with DirectRouting (and a VNI of its own)', () => {
  const drDir = useTempDir('vxlan-dr');
  let dr: OverlayCluster;
  let a: OverlayHost, b: OverlayHost, far: OverlayHost;
  const via = (gateway: string) => (ns: string) => dr.bed.ip(ns, 'route', 'add', '198.18.0.0/23', 'via', gateway);

  beforeAll(async () => {
    dr = await OverlayCluster.create('vxdr', drDir.path, '{"Network":"198.19.0.0/16","Backend":{"Type":"vxlan","VNI":7,"DirectRouting":true}}');
    // `far` is on another L2 subnet (198.18.1.0/24), one hop away: the switch routes between the two.
    await dr.bed.ip(dr.bed.switchNs, 'addr', 'add', '198.18.1.254/24', 'dev', 'br0');
    await dr.bed.exec(dr.bed.switchNs, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    a = await dr.addHost('a', 1, {}, { prepare: via('198.18.0.254') });
    b = await dr.addHost('b', 2, {}, { prepare: via('198.18.0.254') });
    far = await dr.addHost('far', 5, {}, { underlayIp: '198.18.1.5', prepare: via('198.18.1.254') });
    for (const h of [a, b, far]) await dr.addContainer(h);
  });

  afterAll(async () => {
    await dr?.cleanup();
  });

  it('routes a peer on the same L2 subnet via its PublicIP on eth0, and the others through flannel.7', async () => {
    const show = (h: OverlayHost, peer: OverlayHost) => dr.bed.ip(h.ns, 'route', 'show', subnetOf(peer));
    await waitFor('a to route b and far', async () => (await show(a, b)) !== '' && (await show(a, far)) !== '');
    expect((await show(a, b)).trim()).toBe(`${subnetOf(b)} via 198.18.0.2 dev eth0 proto 241`);
    expect((await show(a, far)).trim()).toBe(`${subnetOf(far)} via ${leaseIpOf(far)} dev flannel.7 proto 241 onlink`);
    const farMac = /link\/ether (\S+)/.exec(await dr.bed.ip(far.ns, 'link', 'show', 'flannel.7'))![1];
    expect((await dr.bed.exec(a.ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.7'])).stdout).toContain(`${farMac} dst 198.18.1.5 self permanent`);
    // No neighbour or FDB entry for the directly routed peer.
    expect(await dr.bed.ip(a.ns, 'neigh', 'show', 'dev', 'flannel.7')).not.toContain(leaseIpOf(b));
    expect((await show(far, a)).trim()).toBe(`${subnetOf(a)} via ${leaseIpOf(a)} dev flannel.7 proto 241 onlink`);
    expect(await dr.bed.ip(a.ns, '-d', 'link', 'show', 'flannel.7')).toContain('vxlan id 7 ');
  });

  it('containers on every pair of hosts reach each other', async () => {
    await dr.expectAllReachable([a, b, far]);
  });
});

describe('vxlan with every device key set (Port, GBP, Learning, MTU, a VNI of its own), one host at -v=2', () => {
  const keysDir = useTempDir('vxlan-keys');
  let kc: OverlayCluster;
  let x: OverlayHost, y: OverlayHost;
  /** The device as the kernel reports it (`ip -d -j link show`): what an operator's tools would see. */
  const device = async (h: OverlayHost) => {
    const [link] = JSON.parse(await kc.bed.ip(h.ns, '-d', '-j', 'link', 'show', 'flannel.42')) as {
      ifindex: number; address: string; mtu: number; linkinfo: { info_kind: string; info_data: Record<string, unknown> };
    }[];
    return link;
  };

  beforeAll(async () => {
    kc = await OverlayCluster.create('vxk', keysDir.path, '{"Network":"198.19.0.0/16","Backend":{"Type":"vxlan","VNI":42,"Port":4789,"GBP":true,"Learning":true,"MTU":1400}}');
    x = await kc.addHost('h1', 1);
    // flanneld's -v=2, as units written for flannel pass it: y logs each peer it programs.
    y = await kc.addHost('h2', 2, {}, { args: ['-v=2'] });
    for (const h of [x, y]) await kc.addContainer(h);
  });

  afterAll(async () => {
    await kc?.cleanup();
  });

  it('makes flannel.42 with dstport 4789, gbp, learning on and the overlay MTU 1350 (Backend.MTU 1400 is the wire\'s), which the subnet file reports', async () => {
    for (const h of [x, y]) {
      const link = await device(h);
      expect(link.linkinfo.info_kind).toBe('vxlan');
      expect(link.linkinfo.info_data).toMatchObject({ id: 42, local: h.underlayIp, port: 4789, gbp: true, learning: true });
      expect(link.mtu).toBe(1350);
      expect((await kc.bed.ip(h.ns, '-d', 'link', 'show', 'flannel.42'))).not.toContain('nolearning');
      expect(await readFile(h.subnetFile, 'utf8')).toContain('FLANNEL_MTU=1350\n');
    }
    await kc.expectAllReachable([x, y]);
    const programmed = y.daemon.events('peer-programmed', { subnet: leaseOf(x).subnet });
    expect(programmed.length).toBeGreaterThan(0);
    expect(programmed.map((e) => e.level)).toEqual(programmed.map(() => 20));
    expect(x.daemon.events('peer-programmed')).toEqual([]);
    // A packet of the full overlay MTU, not fragmented, crosses: 1350 − 20 (IP) − 8 (ICMP).
    await kc.bed.exec(x.container!.ns, ['ping', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', '1322', y.container!.ip]);
  });

  it('a SIGTERM and restart keeps the same device (same ifindex and MAC): these keys are compatible with it, not a reason to replace it', async () => {
    const before = await device(x);
    await kc.restartDaemon(x);
    expect(await x.daemon.waitForEvent('vxlan-device', { device: 'flannel.42' })).toMatchObject({ outcome: 'reused', vtepMac: before.address });
    expect(x.daemon.events('vxlan-device-replaced')).toEqual([]);
    const after = await device(x);
    expect({ ifindex: after.ifindex, address: after.address }).toEqual({ ifindex: before.ifindex, address: before.address });
    expect(after.linkinfo.info_data).toMatchObject({ id: 42, port: 4789, gbp: true, learning: true });
    expect(after.mtu).toBe(1350);
    await kc.expectReachable(y, x);
  });
});
