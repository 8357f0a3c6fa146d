import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { flanneldArgs, runFlanneld } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';

// flannel's dual-stack key form (pkg/subnet MakeSubnetKey) and the value a dual-stack flannel host writes.
const DUAL_KEY = '198.19.5.0-24&fc00::-64';
const DUAL_VALUE = '{"PublicIP":"198.18.1.50","PublicIPv6":"fc00::50","BackendType":"alloc"}';

const etcd = useEtcd();
const dir = useTempDir('dualkey');
const startFlanneld = useFlanneld();

/** A fresh prefix whose allocation range is SubnetMin..SubnetMax (alloc backend: etcd for real, no kernel changes). */
function network(subnetMax: string): Promise<string> {
  return etcd.network(JSON.stringify({ Network: '198.19.0.0/16', SubnetMin: '198.19.5.0', SubnetMax: subnetMax, Backend: { Type: 'alloc' } }));
}

function start(prefix: string, publicIp: string, subnetFile: string) {
  const args = flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp, subnetFile });
  return startFlanneld(args, { env: { FLANNELD_RETRY_INTERVAL_MS: '300' } });
}

async function keys(prefix: string): Promise<string[]> {
  return Object.keys(await etcd.dump(`${prefix}/subnets/`)).map((k) => k.slice(`${prefix}/subnets/`.length)).sort();
}

describe('flannel dual-stack lease keys (198.19.5.0-24&fc00::-64)', () => {
  it('hold their IPv4 subnet: never handed out again, neither as the only candidate nor as the previous subnet', async () => {
    const prefix = await network('198.19.5.0');
    await etcd.put(`${prefix}/subnets/${DUAL_KEY}`, DUAL_VALUE);
    // The previous run of this host had that subnet: that must not win over a lease that holds it.
    const subnetFile = dir.file('only.env');
    await writeFile(subnetFile, 'FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.5.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n');
    const d = start(prefix, '198.18.1.1', subnetFile);
    await d.waitForEvent('lease-acquire-failed');
    expect(d.events('lease-acquired')).toEqual([]);
    expect(await keys(prefix)).toEqual([DUAL_KEY]);
    expect(await etcd.get(`${prefix}/subnets/${DUAL_KEY}`)).toBe(DUAL_VALUE);
  });

  it('leave the next subnet to a new host, which sees the dual-stack host as a peer (added, then removed)', async () => {
    const prefix = await network('198.19.6.0');
    await etcd.put(`${prefix}/subnets/${DUAL_KEY}`, DUAL_VALUE);
    const d = start(prefix, '198.18.1.2', dir.file('next.env'));
    expect((await d.waitForEvent('lease-acquired')).subnet).toBe('198.19.6.0/24');
    expect(await keys(prefix)).toEqual(['198.19.5.0-24&fc00::-64', '198.19.6.0-24']);
    await d.waitForEvent('peer-added', { subnet: '198.19.5.0/24', publicIp: '198.18.1.50' });
    await etcd.ctl(['del', `${prefix}/subnets/${DUAL_KEY}`]);
    await d.waitForEvent('peer-removed', { subnet: '198.19.5.0/24' });
  });

  it('are listed by flanneld leases with both subnets', async () => {
    const prefix = await network('198.19.6.0');
    await etcd.put(`${prefix}/subnets/${DUAL_KEY}`, DUAL_VALUE);
    await etcd.put(`${prefix}/subnets/198.19.6.0-24`, '{"PublicIP":"198.18.1.60","BackendType":"alloc"}');
    const { code, stdout } = await runFlanneld(['leases', ...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix })]);
    expect(code).toBe(0);
    const rows = stdout.trimEnd().split('\n').map((l) => l.split(/ {2,}/));
    expect(rows.slice(1).map((r) => r.slice(0, 3))).toEqual([
      ['198.19.5.0/24,fc00::/64', '198.18.1.50', 'alloc'],
      ['198.19.6.0/24', '198.18.1.60', 'alloc'],
    ]);
  });

  it('our own dual-stack lease does not fit an IPv4-only network: it is deleted by its exact key and a plain one taken, as flannel does', async () => {
    const prefix = await network('198.19.5.0');
    await etcd.put(`${prefix}/subnets/${DUAL_KEY}`, '{"PublicIP":"198.18.1.3","PublicIPv6":"fc00::3","BackendType":"alloc"}');
    const d = start(prefix, '198.18.1.3', dir.file('own.env'));
    expect((await d.waitForEvent('lease-acquired')).subnet).toBe('198.19.5.0/24');
    await waitFor('the dual-stack key to go', async () => JSON.stringify(await keys(prefix)) === JSON.stringify(['198.19.5.0-24']));
    expect(JSON.parse((await etcd.get(`${prefix}/subnets/198.19.5.0-24`))!)).toEqual({ PublicIP: '198.18.1.3', BackendType: 'alloc' });
  });
});
