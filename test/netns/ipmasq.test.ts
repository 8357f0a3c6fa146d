import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/subnet/subnet-file.js';
import { builtFile } from '../../testbed/built.js';
import { waitFor } from '../../testbed/netns.js';
import { OverlayCluster, type OverlayHost } from '../../testbed/overlay.js';
import { useTempDir } from '../helpers/fixtures.js';

const RULES_ENV = { FLANNELD_IP_MASQ: 'true', FLANNELD_IPTABLES_RESYNC: '1' };
const NETWORK = '198.19.0.0/16';
const MASQ = '-m comment --comment "flanneld masq"';
const FWD = '-m comment --comment "flanneld forward"';

const dir = useTempDir('masq');
let cluster: OverlayCluster;
let h1: OverlayHost, h2: OverlayHost;
let outside: string;

beforeAll(async () => {
  cluster = await OverlayCluster.create('masq', dir.path, `{"Network":"${NETWORK}","Backend":{"Type":"udp"}}`);
  h1 = await cluster.addHost('h1', 1, RULES_ENV);
  h2 = await cluster.addHost('h2', 2, RULES_ENV);
  for (const h of [h1, h2]) await cluster.addContainer(h);
  // A machine on the LAN that is not part of the overlay.
  outside = await cluster.bed.addHost('out', '198.18.0.50');
});

afterAll(async () => {
  await cluster?.cleanup();
});

/** flanneld's rules in a namespace as iptables-save prints them: the jumps and the chains' content, nat then filter. */
async function flannelRules(ns: string): Promise<{ nat: string[]; filter: string[] }> {
  const lines = async (table: string, chain: string) =>
    (await cluster.bed.exec(ns, ['iptables-save', '-t', table])).stdout.split('\n').filter((l) => l.startsWith('-A') && l.includes(chain));
  return { nat: await lines('nat', 'FLANNEL-POSTRTG'), filter: await lines('filter', 'FLANNEL-FWD') };
}

function masqRules(subnet: string, network = NETWORK, randomFully = true): string[] {
  const masq = randomFully ? '-j MASQUERADE --random-fully' : '-j MASQUERADE';
  return [
    `-A POSTROUTING ${MASQ} -j FLANNEL-POSTRTG`,
    `-A FLANNEL-POSTRTG -s ${subnet} -d ${network} ${MASQ} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${network} -d ${subnet} ${MASQ} -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s ${network} -d ${subnet} ${MASQ} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${network} ! -d 224.0.0.0/4 ${MASQ} ${masq}`,
    `-A FLANNEL-POSTRTG ! -s ${network} -d ${network} ${MASQ} ${masq}`,
  ];
}

function forwardRules(network = NETWORK): string[] {
  return [`-A FORWARD ${FWD} -j FLANNEL-FWD`, `-A FLANNEL-FWD -s ${network} ${FWD} -j ACCEPT`, `-A FLANNEL-FWD -d ${network} ${FWD} -j ACCEPT`];
}

/** The subnet the host's subnet file names now (its lease may change within a test; the bridge set up earlier does not). */
async function subnetInFile(h: OverlayHost): Promise<string> {
  return parseEnvFile(await readFile(h.subnetFile, 'utf8')).FLANNEL_SUBNET.replace(/\.1\/(\d+)$/, '.0/$1');
}

/** The source address a UDP datagram from `fromNs` arrives with at `toIp` (a listener in `toNs`). */
async function sourceSeen(fromNs: string, toNs: string, toIp: string): Promise<string> {
  const listener = cluster.bed.spawn(toNs, [process.execPath, '-e',
    `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>{console.log(r.address);process.exit(0)});` +
    `s.bind(9999,'${toIp}');setTimeout(()=>process.exit(2),8000)`]);
  let seen = '';
  listener.stdout?.on('data', (d: Buffer) => (seen += d.toString()));
  const exited = new Promise((r) => listener.on('exit', r));
  await cluster.bed.waitForListener(toNs, 9999, 'udp');
  await cluster.bed.exec(fromNs, [process.execPath, '-e', `require('dgram').createSocket('udp4').send('x',9999,'${toIp}',()=>process.exit(0))`]);
  await exited;
  return seen.trim();
}

describe('iptables rules: --ip-masq and FLANNEL-FWD (real iptables in network namespaces)', () => {
  it('installs exactly flannel\'s masq and forward rule sets, masq jump first in POSTROUTING, and says so in the subnet file', async () => {
    expect(await flannelRules(h1.ns)).toEqual({ nat: masqRules(await subnetInFile(h1)), filter: forwardRules() });
    const { stdout } = await cluster.bed.exec(h1.ns, ['iptables', '-t', 'nat', '-S', 'POSTROUTING']);
    expect(stdout.split('\n')[1]).toContain('FLANNEL-POSTRTG');
    const { stdout: env } = await cluster.bed.exec(h1.ns, ['cat', h1.subnetFile]);
    expect(env).toContain('FLANNEL_IPMASQ=true');
  });

  it('masquerades traffic leaving the overlay, and keeps container addresses inside it', async () => {
    expect(await sourceSeen(h1.container!.ns, outside, '198.18.0.50')).toBe('198.18.0.1');
    expect(await sourceSeen(h1.container!.ns, h2.container!.ns, h2.container!.ip)).toBe(h1.container!.ip);
  });

  it('puts back a masq rule, a forward rule and the forward jump someone deleted, within the resync period', async () => {
    const expected = { nat: masqRules(await subnetInFile(h1)), filter: forwardRules() };
    await cluster.bed.exec(h1.ns, ['sh', '-c', `iptables -t nat ${expected.nat[1].replace('-A', '-D')}`]);
    await cluster.bed.exec(h1.ns, ['sh', '-c', `iptables -t filter ${expected.filter[2].replace('-A', '-D')} && iptables -t filter ${expected.filter[0].replace('-A', '-D')}`]);
    await waitFor('the resync', async () => JSON.stringify(await flannelRules(h1.ns)) === JSON.stringify(expected), 10_000);
    // Found missing and written again by flanneld, which names the chain each time.
    const warned = () => new Set(h1.daemon.events('iptables-rule-missing').map((e) => e.chain));
    await waitFor('the warnings', async () => warned().size === 2);
    expect([...warned()].sort()).toEqual(['FLANNEL-FWD', 'FLANNEL-POSTRTG']);
    expect(h1.daemon.events('iptables-failed')).toEqual([]);
  });

  it('a restart adds no duplicates, and rules of an earlier lease are replaced', async () => {
    // Killed, the rules stay behind, as after a crash; an earlier lease on another subnet left its rules too.
    await cluster.restartDaemon(h2, {
      signal: 'SIGKILL',
      whileDown: async () => {
        await cluster.bed.exec(h2.ns, ['iptables', '-t', 'nat', '-A', 'FLANNEL-POSTRTG', '-s', '198.19.250.0/24', '-d', NETWORK, '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN']);
        await cluster.bed.exec(h2.ns, ['iptables', '-t', 'filter', '-A', 'FLANNEL-FWD', '-s', '198.19.250.0/24', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'ACCEPT']);
      },
    });
    await h2.daemon.waitForEvent('iptables-applied');
    expect(await flannelRules(h2.ns)).toEqual({ nat: masqRules(await subnetInFile(h2)), filter: forwardRules() });
  });

  it('--ip-masq-fully-random-disable masquerades without --random-fully; --iptables-forward-rules=false removes FLANNEL-FWD', async () => {
    await cluster.restartDaemon(h2, { env: { FLANNELD_IP_MASQ_FULLY_RANDOM_DISABLE: 'true', FLANNELD_IPTABLES_FORWARD_RULES: 'false' } });
    await h2.daemon.waitForEvent('iptables-applied');
    expect(await h2.daemon.waitForEvent('iptables-removed')).toMatchObject({ chain: 'FLANNEL-FWD' });
    expect(await flannelRules(h2.ns)).toEqual({ nat: masqRules(await subnetInFile(h2), NETWORK, false), filter: [] });
    const { stdout } = await cluster.bed.exec(h2.ns, ['iptables-save', '-t', 'filter']);
    expect(stdout).not.toContain('FLANNEL-FWD');
  });

  it('SIGTERM leaves both rule sets in place, so traffic leaving a host is still masqueraded while flanneld restarts', async () => {
    const before = await flannelRules(h1.ns);
    expect((await h1.daemon.stop('SIGTERM')).code).toBe(0);
    expect(await flannelRules(h1.ns)).toEqual(before);
    expect(await sourceSeen(h1.container!.ns, outside, '198.18.0.50')).toBe('198.18.0.1');
  });

  it('a restart on a different Network and lease replaces both rule sets, with no stale rule and no duplicate jump', async () => {
    const oldLease = await subnetInFile(h1);
    // A Network that no longer holds the old lease, so the lease moves too.
    const network = Number(oldLease.split('.')[2]) < 128 ? '198.19.128.0/17' : '198.19.0.0/17';
    // h1's flanneld was stopped by the test before; restartDaemon starts it again after the change.
    await cluster.restartDaemon(h1, { whileDown: () => cluster.etcd.put(`${cluster.prefix}/config`, `{"Network":"${network}","Backend":{"Type":"udp"}}`) });
    await h1.daemon.waitForEvent('iptables-applied', { network });
    const lease = await subnetInFile(h1);
    expect(lease).not.toBe(oldLease);
    expect(await flannelRules(h1.ns)).toEqual({ nat: masqRules(lease, network), filter: forwardRules(network) });
  });

  it('removeFlannelIptables (flanneld teardown) removes both chains and their jumps, and is safe to run twice or without iptables', async () => {
    expect((await h1.daemon.stop('SIGTERM')).code).toBe(0);
    const module = builtFile('src/iptables/flannel-iptables.js');
    const script = `import(${JSON.stringify(module)}).then(async (m) => console.log(JSON.stringify(await m.removeFlannelIptables())))`;
    const teardown = async (env: string[] = []) => (await cluster.bed.exec(h1.ns, [...env, process.execPath, '--input-type=module', '-e', script])).stdout.trim();
    expect(await teardown(['env', 'PATH=/nonexistent'])).toBe('[]'); // no iptables: nothing flanneld could have written
    expect(await teardown()).toBe('["FLANNEL-POSTRTG","FLANNEL-FWD"]');
    expect(await teardown()).toBe('[]');
    expect(await flannelRules(h1.ns)).toEqual({ nat: [], filter: [] });
    for (const table of ['nat', 'filter']) expect((await cluster.bed.exec(h1.ns, ['iptables-save', '-t', table])).stdout).not.toMatch(/FLANNEL/);
  });
});
