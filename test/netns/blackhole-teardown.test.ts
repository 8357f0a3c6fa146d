import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdOnSwitch } from '../../testbed/etcd.js';
import { FlanneldProcess, flanneldArgs, runFlanneld } from '../../testbed/flanneld.js';
import { SWITCH_IP, waitFor } from '../../testbed/netns.js';
import { useEtcd, useTempDir, useTestbed } from '../helpers/fixtures.js';

const ENV = { FLANNELD_IP_BLACKHOLE_ROUTE: 'true', FLANNELD_IPTABLES_RESYNC: '1', FLANNELD_IP_MASQ: 'true', FLANNELD_RETRY_INTERVAL_MS: '300' };

const bed = useTestbed('bhole');
const etcd = useEtcd(etcdOnSwitch(bed));
const dir = useTempDir('bhole');
const daemons: FlanneldProcess[] = [];

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop('SIGKILL').catch(() => undefined)));
});

/** flanneld in host `ns` on network `prefix` with ENV, writing `<name>.env`; killed after the file's last test. */
function start(ns: string, prefix: string, name: string): FlanneldProcess {
  const d = new FlanneldProcess(flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'eth0', subnetFile: dir.file(`${name}.env`) }), { netns: ns, env: ENV });
  daemons.push(d);
  return d;
}

async function routes(ns: string): Promise<string> {
  return (await bed.ip(ns, 'route', 'show', 'table', 'main')).trim();
}

/** What flanneld may leave behind in a host: devices, our routes, iptables chains. */
async function leftovers(ns: string): Promise<string[]> {
  const found: string[] = [];
  const links = await bed.ip(ns, '-o', 'link', 'show');
  for (const m of links.matchAll(/^\d+: (flannel[^:@ ]*)/gm)) found.push(`link ${m[1]}`);
  for (const line of (await routes(ns)).split('\n')) if (/proto 241|blackhole|flannel/.test(line)) found.push(`route ${line}`);
  for (const table of ['nat', 'filter']) {
    const { stdout } = await bed.exec(ns, ['iptables-save', '-t', table]);
    for (const line of stdout.split('\n')) if (/FLANNEL/.test(line)) found.push(`${table}: ${line}`);
  }
  return found;
}

describe('--ip-blackhole-route (alloc backend, real kernel)', () => {
  // Host h1 (alloc backend, like Canal: no overlay device) has a default route to the switch and a client network
  // behind it (198.18.9.0/24 on cbr0), so traffic for its lease that no bridge claims would leave by eth0. Its range
  // is 198.19.7.0-198.19.8.0 with 198.19.8.0 reserved by another host, so its lease is 198.19.7.0/24.
  const ALLOC = '{"Network":"198.19.0.0/16","SubnetMin":"198.19.7.0","SubnetMax":"198.19.8.0","Backend":{"Type":"alloc"}}';
  let h1: string, client: string;
  let prefix1: string;
  let d1: FlanneldProcess | undefined;

  beforeAll(async () => {
    prefix1 = await etcd.network(ALLOC);
    await etcd.put(`${prefix1}/subnets/198.19.8.0-24`, '{"PublicIP":"198.18.0.88","BackendType":"alloc"}');
    h1 = await bed.addHost('h1', '198.18.0.1');
    await bed.ip(h1, 'route', 'add', 'default', 'via', SWITCH_IP);
    client = await bed.addContainer(h1, 'cl', '198.18.9.1/24', '198.18.9.2');
    // Counts what h1 forwards out of eth0 towards its lease: the leak the blackhole route prevents.
    await bed.exec(h1, ['iptables', '-I', 'FORWARD', '-o', 'eth0', '-d', '198.19.7.0/24', '-j', 'ACCEPT']);
  });

  async function leaked(): Promise<number> {
    const { stdout } = await bed.exec(h1, ['iptables-save', '-c', '-t', 'filter']);
    const line = stdout.split('\n').find((l) => l.includes('-A FORWARD -d 198.19.7.0/24 -o eth0'));
    return Number(/^\[(\d+):/.exec(line ?? '')?.[1]);
  }

  /** Two pings from the client to an address of h1's lease that nothing holds (no reply expected; bounded by -w). */
  async function sendToUnusedLeaseAddress(): Promise<void> {
    await bed.exec(client, ['ping', '-c', '2', '-i', '0.2', '-w', '2', '198.19.7.7']).catch(() => undefined);
  }

  it('without flanneld, traffic for the lease leaks out of the default route (the control)', async () => {
    const before = await leaked();
    await sendToUnusedLeaseAddress();
    expect(await leaked()).toBeGreaterThanOrEqual(before + 2);
  });

  it('adds a blackhole route for the lease: traffic no bridge claims is dropped, not sent out of eth0', async () => {
    d1 = start(h1, prefix1, 'h1');
    await d1.waitForEvent('subnet-file-written');
    expect(await routes(h1)).toContain('blackhole 198.19.7.0/24 proto 241 metric 4294967295');
    const before = await leaked();
    await sendToUnusedLeaseAddress();
    expect(await leaked()).toBe(before);
  });

  it('a bridge holding the lease still wins over the blackhole route, even when it comes after it (docker0)', async () => {
    await bed.addContainer(h1, 'c1', '198.19.7.1/24', '198.19.7.2');
    // Throws unless the container answers.
    await bed.exec(client, ['ping', '-c', '1', '-W', '2', '198.19.7.2']);
    expect(await routes(h1)).toContain('blackhole 198.19.7.0/24');
  });

  it('puts the route back within the resync period when someone deletes it', async () => {
    await bed.ip(h1, 'route', 'del', 'blackhole', '198.19.7.0/24', 'proto', '241', 'metric', '4294967295');
    expect(await routes(h1)).not.toContain('blackhole');
    await d1!.waitForEvent('blackhole-route-missing', { subnet: '198.19.7.0/24' }, 10_000);
    await waitFor('the blackhole route back', async () => (await routes(h1)).includes('blackhole 198.19.7.0/24'), 10_000);
  });

  it('is replaced when the lease changes: the old subnet may be another host\'s now', async () => {
    // Another host takes our subnet and frees the reserved one: flanneld re-acquires on 198.19.8.0/24.
    await etcd.ctl(['del', `${prefix1}/subnets/198.19.8.0-24`]);
    await etcd.put(`${prefix1}/subnets/198.19.7.0-24`, '{"PublicIP":"198.18.0.77","BackendType":"alloc"}');
    await d1!.waitForEvent('blackhole-route', { subnet: '198.19.8.0/24' }, 20_000);
    const table = await routes(h1);
    expect(table).toContain('blackhole 198.19.8.0/24 proto 241');
    expect(table).not.toMatch(/blackhole 198\.19\.7\.0/);
  });

  it('stays on SIGTERM, and a restart adopts it without adding a second one', async () => {
    expect((await d1!.stop('SIGTERM')).code).toBe(0);
    expect(await routes(h1)).toContain('blackhole 198.19.8.0/24');
    d1 = start(h1, prefix1, 'h1');
    await d1.waitForEvent('subnet-file-written');
    expect((await routes(h1)).match(/blackhole/g)).toHaveLength(1);
  });
});

describe('flanneld teardown', () => {
  // Hosts of its own: h2 runs the udp backend, h3 the alloc backend with a bridge holding its lease's first address
  // (docker0), and h4 has never run flanneld.
  const UDP = '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}';
  const ALLOC = '{"Network":"198.19.0.0/16","SubnetMin":"198.19.20.0","SubnetMax":"198.19.20.0","Backend":{"Type":"alloc"}}';
  let h2: string, h3: string, h4: string;
  let prefix2: string, prefix3: string;

  beforeAll(async () => {
    prefix2 = await etcd.network(UDP);
    prefix3 = await etcd.network(ALLOC);
    h2 = await bed.addHost('h2', '198.18.0.2');
    h3 = await bed.addHost('h3', '198.18.0.3');
    await bed.addBridge(h3, '198.19.20.1/24');
    h4 = await bed.addHost('h4', '198.18.0.4');
  });

  it('after hosts ran flanneld (alloc, udp), removes their routes, devices and rules; etcd stays untouched', async () => {
    const d2 = start(h2, prefix2, 'h2');
    const d3 = start(h3, prefix3, 'h3');
    for (const d of [d2, d3]) {
      await d.waitForEvent('subnet-file-written');
      await d.waitForEvent('iptables-applied');
    }
    expect(await leftovers(h2)).toEqual(expect.arrayContaining(['link flannel0', expect.stringMatching(/^route blackhole/), expect.stringMatching(/^nat: :FLANNEL-POSTRTG/), expect.stringMatching(/^filter: :FLANNEL-FWD/)]));
    // As after a crash, or a stop that keeps state for the next start: everything stays.
    await Promise.all([d2.stop('SIGKILL'), d3.stop('SIGKILL')]);
    expect((await leftovers(h3)).length).toBeGreaterThan(0);
    const etcdBefore = await etcd.dump('/');

    for (const [ns, file] of [[h3, dir.file('h3.env')], [h2, dir.file('h2.env')]]) {
      const run = await runFlanneld(['teardown', '--subnet-file', file], { netns: ns });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('removed what flanneld created for Network 198.19.0.0/16');
      expect(await leftovers(ns)).toEqual([]);
      const again = await runFlanneld(['teardown', '--subnet-file', file], { netns: ns });
      expect(again.code, again.stderr).toBe(0);
    }
    // The container bridge is docker's, not flanneld's: it stays.
    expect(await routes(h3)).toContain('198.19.20.0/24 dev cbr0');
    expect(await etcd.dump('/')).toEqual(etcdBefore);
  });

  it('without a subnet file, removes what needs no Network and says what it could not; a garbled one is an error', async () => {
    await bed.exec(h4, ['iptables', '-t', 'nat', '-N', 'FLANNEL-POSTRTG']);
    await bed.exec(h4, ['iptables', '-t', 'nat', '-I', 'POSTROUTING', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG']);
    const missing = await runFlanneld(['teardown', '--subnet-file', dir.file('none.env')], { netns: h4 });
    expect(missing.code).toBe(0);
    expect(missing.stderr).toMatch(/^flanneld teardown: no subnet file at .*none\.env/);
    expect(await leftovers(h4)).toEqual([]);

    await bed.exec(h4, ['sh', '-c', `echo 'FLANNEL_NETWORK=bogus' > ${dir.file('garbled.env')}`]);
    await bed.exec(h4, ['iptables', '-t', 'nat', '-N', 'FLANNEL-POSTRTG']);
    const garbled = await runFlanneld(['teardown', '--subnet-file', dir.file('garbled.env')], { netns: h4 });
    expect(garbled.code).toBe(1);
    expect(garbled.stderr).toBe(`flanneld: subnet file ${dir.file('garbled.env')} has no valid FLANNEL_NETWORK (found "bogus")\n`);
    // Nothing was removed on a guess.
    expect(await leftovers(h4)).toEqual(['nat: :FLANNEL-POSTRTG - [0:0]']);
  });
});
