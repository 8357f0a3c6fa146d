import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dockerd, flannelDockerOptions, PAGE_BODY, removeBusyboxImage } from '../../testbed/dockerd.js';
import { waitFor } from '../../testbed/netns.js';
import { OverlayCluster, type OverlayHost } from '../../testbed/overlay.js';
import { useTempDir } from '../helpers/fixtures.js';

/**
 * The docker integration flannel exists for, with a real dockerd on each host: docker0 takes --bip/--mtu/--ip-masq
 * from flanneld's subnet file through mk-docker-opts and the systemd drop-in, and containers on two hosts talk
 * over the overlay. Every backend this build has runs it.
 */
const BACKENDS = ['udp', 'vxlan', 'host-gw'];
// The overlay Network; a docker network outside it (ISOLATED) checks that FLANNEL-FWD leaves docker's isolation alone.
const NETWORK = '198.19.0.0/17';
const ISOLATED = '198.19.200.0/24';
const FLANNELD_ENV = { FLANNELD_IP_MASQ: 'true', FLANNELD_IPTABLES_RESYNC: '1' };

afterAll(async () => {
  await removeBusyboxImage();
});

describe.each(BACKENDS)('docker --bip on flannel-ts, %s backend, real dockerd on two hosts', (backend) => {
  const dir = useTempDir('dockertest');
  let cluster: OverlayCluster;
  let h1: OverlayHost, h2: OverlayHost;
  const dockerds = new Map<OverlayHost, Dockerd>();
  let ip1: string, ip2: string;

  /** A dockerd started the way the systemd drop-in starts it, on a host whose IP forwarding was off (a fresh host). */
  async function startDocker(host: OverlayHost): Promise<Dockerd> {
    await host.daemon.waitForEvent('subnet-file-written');
    const dockerd = await Dockerd.start(host.ns, await flannelDockerOptions(cluster.bed, host.ns, host.subnetFile));
    dockerds.set(host, dockerd);
    await dockerd.importBusybox();
    return dockerd;
  }

  const docker = (host: OverlayHost) => dockerds.get(host)!;

  async function pings(from: OverlayHost, container: string, ip: string, count = 1): Promise<boolean> {
    return docker(from).exec(container, ['ping', '-c', String(count), '-W', '1', ip], 15_000).then(() => true, () => false);
  }

  async function fetchPage(from: OverlayHost, container: string, ip: string, waitSeconds = 5): Promise<string> {
    return docker(from).exec(container, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w ${waitSeconds} ${ip} 80`], 15_000);
  }

  beforeAll(async () => {
    cluster = await OverlayCluster.create(`dk${backend.replace(/[^a-z0-9]/g, '')}`.slice(0, 8), dir.path, JSON.stringify({ Network: NETWORK, Backend: { Type: backend } }));
    h1 = await cluster.addHost('h1', 1, FLANNELD_ENV);
    h2 = await cluster.addHost('h2', 2, FLANNELD_ENV);
    // The test bed turns forwarding on for its hosts. On a fresh host it is off, so dockerd turns it on and sets
    // FORWARD's policy to DROP: the situation FLANNEL-FWD is for.
    for (const h of [h1, h2]) await cluster.bed.exec(h.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    await Promise.all([startDocker(h1), startDocker(h2)]);
    ip1 = await docker(h1).runContainer('c1', ['sleep', '600']);
    ip2 = await docker(h2).runContainer('c2', ['httpd', '-f', '-vv', '-p', '80', '-h', '/www']);
  });

  afterAll(async () => {
    for (const dockerd of dockerds.values()) await dockerd.stop();
    await cluster?.cleanup();
  });

  it('dockerd runs with the subnet file\'s options: docker0 holds FLANNEL_SUBNET, FORWARD drops by default', async () => {
    for (const h of [h1, h2]) {
      const { stdout: env } = await cluster.bed.exec(h.ns, ['cat', h.subnetFile]);
      const bip = /FLANNEL_SUBNET=(\S+)/.exec(env)![1];
      const mtu = /FLANNEL_MTU=(\d+)/.exec(env)![1];
      const { stdout: link } = await cluster.bed.exec(h.ns, ['ip', '-o', 'addr', 'show', 'docker0']);
      expect(link).toContain(`inet ${bip} `);
      const { stdout: mtuLine } = await cluster.bed.exec(h.ns, ['ip', '-o', 'link', 'show', 'docker0']);
      expect(mtuLine).toContain(`mtu ${mtu} `);
      const { stdout: forward } = await cluster.bed.exec(h.ns, ['iptables', '-S', 'FORWARD']);
      expect(forward.split('\n')[0]).toBe('-P FORWARD DROP');
      // --ip-masq on flanneld means --ip-masq=false for docker: no MASQUERADE of docker's own.
      const { stdout: nat } = await cluster.bed.exec(h.ns, ['iptables-save', '-t', 'nat']);
      expect(nat.split('\n').filter((l) => l.includes('MASQUERADE') && !l.includes('flanneld masq'))).toEqual([]);
    }
    expect(ip1).toMatch(/^198\.19\./);
    expect(ip2).toMatch(/^198\.19\./);
    // Each dockerd runs its containers on a containerd of its own (never the machine's), and keeps its trust key in
    // its own dir (not /etc/docker/key.json): stop() removes both.
    expect(await docker(h1).shimAddress('c1')).toBe(docker(h1).containerdSocket);
    expect(await docker(h2).shimAddress('c2')).toBe(docker(h2).containerdSocket);
    for (const h of [h1, h2]) await access(join(docker(h).dir, 'key.json'));
  });

  it('a container on host 1 pings a container on host 2 by address and fetches a page from it over TCP', async () => {
    await waitFor('c1 -> c2 over the overlay', () => pings(h1, 'c1', ip2), 20_000);
    expect(await pings(h1, 'c1', ip2, 3)).toBe(true);
    expect(await pings(h2, 'c2', ip1, 3)).toBe(true);
    const page = await fetchPage(h1, 'c1', ip2);
    expect(page).toMatch(/^HTTP\/1\.[01] 200/);
    expect(page).toContain(PAGE_BODY);
    // The request arrives from c1's own address: inside the overlay nobody masquerades (flanneld's RETURN rules,
    // and docker --ip-masq=false from the subnet file).
    expect(await docker(h2).logs('c2')).toContain(`[::ffff:${ip1}]:`);
  });

  it('without FLANNEL-FWD, connections into host 2\'s containers are dropped by dockerd\'s FORWARD policy; with it they pass', async () => {
    await cluster.restartDaemon(h2, { env: { FLANNELD_IPTABLES_FORWARD_RULES: 'false' } });
    expect(await h2.daemon.waitForEvent('iptables-removed')).toMatchObject({ chain: 'FLANNEL-FWD' });
    // The overlay itself works: c2's own connections out are accepted by docker's rules, and host 1 has FLANNEL-FWD.
    await waitFor('c2 -> c1 over the overlay', () => pings(h2, 'c2', ip1), 20_000);
    expect(await pings(h1, 'c1', ip2, 2)).toBe(false);
    await expect(fetchPage(h1, 'c1', ip2, 2)).rejects.toThrow();

    await cluster.restartDaemon(h2);
    await h2.daemon.waitForEvent('iptables-applied');
    await waitFor('c1 -> c2 with FLANNEL-FWD', () => pings(h1, 'c1', ip2), 20_000);
    expect(await fetchPage(h1, 'c1', ip2)).toContain(PAGE_BODY);
  });

  it('FLANNEL-FWD comes after docker\'s own chains, so docker\'s isolation of its other networks still holds', async () => {
    // dockerd started after flanneld here, so it put its rules on top; have flanneld write its jump while dockerd
    // runs (as after a flush), which is when flanneld's choice of place counts.
    const jump = ['FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD'];
    await cluster.bed.exec(h1.ns, ['iptables', '-D', ...jump]);
    await waitFor('the forward jump back', () => cluster.bed.exec(h1.ns, ['iptables', '-C', ...jump]).then(() => true, () => false), 10_000);
    const { stdout } = await cluster.bed.exec(h1.ns, ['iptables', '-S', 'FORWARD']);
    const rules = stdout.split('\n');
    const at = (target: string) => rules.findIndex((r) => r.endsWith(`-j ${target}`));
    expect(at('FLANNEL-FWD')).toBeGreaterThan(at('DOCKER-USER'));
    expect(at('FLANNEL-FWD')).toBeGreaterThan(at('DOCKER-ISOLATION-STAGE-1'));
    // A docker network outside the overlay: host 1 reaches its container, c1 (on docker0, inside Network) must not.
    await docker(h1).docker(['network', 'create', '--subnet', ISOLATED, 'isolated']);
    const ip3 = await docker(h1).runContainer('c3', ['sleep', '600'], 'isolated');
    await cluster.bed.exec(h1.ns, ['ping', '-c', '1', '-W', '2', ip3]);
    expect(await pings(h1, 'c1', ip3, 2)).toBe(false);
  });
});
