import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../testbed/netns.js';
import { OverlayCluster, type OverlayHost } from '../../testbed/overlay.js';

const MASQ_ENV = { FLANNELD_IP_MASQ: 'true', FLANNELD_IPTABLES_RESYNC: '1' };

let dir: string;
let cluster: OverlayCluster;
let h1: OverlayHost, h2: OverlayHost;
let outside: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ft-masq-'));
  cluster = await OverlayCluster.create('masq', dir, '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}');
  h1 = await cluster.addHost('h1', 1, MASQ_ENV);
  h2 = await cluster.addHost('h2', 2, MASQ_ENV);
  for (const h of [h1, h2]) await cluster.addContainer(h);
  // A machine on the LAN that is not part of the overlay.
  outside = await cluster.bed.addHost('out', '198.18.0.50');
});

afterAll(async () => {
  await cluster?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** The nat table's flannel rules in a namespace, as iptables-save prints them. */
async function masqRules(ns: string): Promise<string[]> {
  const { stdout } = await cluster.bed.exec(ns, ['iptables-save', '-t', 'nat']);
  return stdout.split('\n').filter((l) => l.includes('FLANNEL-POSTRTG') && l.startsWith('-A'));
}

function expectedRules(subnet: string): string[] {
  const c = '-m comment --comment "flanneld masq"';
  return [
    `-A POSTROUTING ${c} -j FLANNEL-POSTRTG`,
    `-A FLANNEL-POSTRTG -s ${subnet} -d 198.19.0.0/16 ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s 198.19.0.0/16 -d ${subnet} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s 198.19.0.0/16 -d ${subnet} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s 198.19.0.0/16 ! -d 224.0.0.0/4 ${c} -j MASQUERADE --random-fully`,
    `-A FLANNEL-POSTRTG ! -s 198.19.0.0/16 -d 198.19.0.0/16 ${c} -j MASQUERADE --random-fully`,
  ];
}

const leaseOf = (h: OverlayHost) => h.bridgeCidr!.replace(/\.1\/24$/, '.0/24');

/** The source address a UDP datagram from `fromNs` arrives with at `toIp` (a listener in `toNs`). */
async function sourceSeen(fromNs: string, toNs: string, toIp: string): Promise<string> {
  const listener = cluster.bed.spawn(toNs, [process.execPath, '-e',
    `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>{console.log(r.address);process.exit(0)});` +
    `s.bind(9999,'${toIp}');setTimeout(()=>process.exit(2),8000)`]);
  let seen = '';
  listener.stdout?.on('data', (d: Buffer) => (seen += d.toString()));
  const exited = new Promise((r) => listener.on('exit', r));
  await waitFor('the listener', async () => (await cluster.bed.exec(toNs, ['ss', '-lun'])).stdout.includes(`${toIp}:9999`));
  await cluster.bed.exec(fromNs, [process.execPath, '-e', `require('dgram').createSocket('udp4').send('x',9999,'${toIp}',()=>process.exit(0))`]);
  await exited;
  return seen.trim();
}

describe('--ip-masq (real iptables in network namespaces)', () => {
  it('installs exactly flannel\'s rule set, first in POSTROUTING, and says so in the subnet file', async () => {
    expect(await masqRules(h1.ns)).toEqual(expectedRules(leaseOf(h1)));
    const { stdout } = await cluster.bed.exec(h1.ns, ['iptables', '-t', 'nat', '-S', 'POSTROUTING']);
    expect(stdout.split('\n')[1]).toContain('FLANNEL-POSTRTG');
    const { stdout: env } = await cluster.bed.exec(h1.ns, ['cat', h1.subnetFile]);
    expect(env).toContain('FLANNEL_IPMASQ=true');
  });

  it('masquerades traffic leaving the overlay, and keeps container addresses inside it', async () => {
    expect(await sourceSeen(h1.container!.ns, outside, '198.18.0.50')).toBe('198.18.0.1');
    expect(await sourceSeen(h1.container!.ns, h2.container!.ns, h2.container!.ip)).toBe(h1.container!.ip);
  });

  it('puts back a rule someone deleted, within the resync period', async () => {
    const [, first] = expectedRules(leaseOf(h1));
    await cluster.bed.exec(h1.ns, ['sh', '-c', `iptables -t nat ${first.replace('-A', '-D')}`]);
    expect(await masqRules(h1.ns)).not.toContain(first);
    await waitFor('the resync', async () => JSON.stringify(await masqRules(h1.ns)) === JSON.stringify(expectedRules(leaseOf(h1))), 10_000);
  });

  it('a restart adds no duplicates, and rules of an earlier lease are replaced', async () => {
    await h2.daemon.stop('SIGKILL'); // rules stay behind, as after a crash
    // An earlier lease on another subnet left its rules too.
    await cluster.bed.exec(h2.ns, ['iptables', '-t', 'nat', '-A', 'FLANNEL-POSTRTG', '-s', '198.19.250.0/24', '-d', '198.19.0.0/16', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN']);
    h2.daemon = cluster.startDaemon(h2.ns, h2.subnetFile, MASQ_ENV);
    await h2.daemon.waitForLog('ip-masq rules in place');
    expect(await masqRules(h2.ns)).toEqual(expectedRules(leaseOf(h2)));
  });

  it('SIGTERM removes the rules and the chain', async () => {
    expect((await h1.daemon.stop('SIGTERM')).code).toBe(0);
    expect(await masqRules(h1.ns)).toEqual([]);
    const { stdout } = await cluster.bed.exec(h1.ns, ['iptables-save', '-t', 'nat']);
    expect(stdout).not.toContain('FLANNEL-POSTRTG');
  });
});
