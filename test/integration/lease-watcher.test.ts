import { describe, expect, it } from 'vitest';
import { EtcdUnavailableError } from '../../src/errors.js';
import { formatIpv4Net, parseIpv4Net } from '../../src/ip/ipv4.js';
import { EtcdRegistry, type Registry } from '../../src/subnet/etcd-registry.js';
import { retrySchedule } from '../../src/retry.js';
import type { LeaseEvent } from '../../src/subnet/lease.js';
import { LeaseWatcher } from '../../src/subnet/lease-watcher.js';
import { waitFor } from '../../testbed/netns.js';
import { useEtcd } from '../helpers/fixtures.js';
import { loggedEvents } from '../helpers/log-capture.js';

const etcd = useEtcd();

const NETWORK = parseIpv4Net('198.19.0.0/16');

/**
 * Runs `body` while a watcher on `registry` (our own lease's PublicIP is 198.18.5.99, its subnet `ownSubnet`; the
 * network 198.19.0.0/16) is started, then stops it and closes the registry, pass or fail. `seen` collects the lease
 * events published, as `<type> <subnet> <PublicIP>`.
 */
async function watching(registry: Registry, body: (seen: string[], watcher: LeaseWatcher) => Promise<void>, ownSubnet?: string): Promise<void> {
  const own = ownSubnet ? parseIpv4Net(ownSubnet) : undefined;
  const watcher = new LeaseWatcher({ registry, ownPublicIp: '198.18.5.99', network: NETWORK, ownSubnet: () => own, retry: retrySchedule(200) });
  const seen: string[] = [];
  watcher.on('lease', (e: LeaseEvent) => seen.push(`${e.type} ${formatIpv4Net(e.lease.subnet)} ${e.lease.attrs.PublicIP}`));
  try {
    await watcher.start();
    await body(seen, watcher);
  } finally {
    await watcher.stop();
    registry.close();
  }
}

describe('peer lease watch on a real etcd', () => {
  it('publishes added, changed and removed peers, never our own lease', async () => {
    const prefix = await etcd.network();
    await etcd.put(`${prefix}/subnets/198.19.1.0-24`, '{"PublicIP":"198.18.5.1"}');
    await etcd.put(`${prefix}/subnets/198.19.2.0-24`, '{"PublicIP":"198.18.5.99"}'); // ours
    await watching(new EtcdRegistry({ endpoints: [etcd.endpoint], prefix }), async (seen, watcher) => {
      await etcd.put(`${prefix}/subnets/198.19.3.0-24`, '{"PublicIP":"198.18.5.3"}');
      await etcd.put(`${prefix}/subnets/198.19.1.0-24`, '{"PublicIP":"198.18.5.11"}');
      await etcd.ctl(['del', `${prefix}/subnets/198.19.3.0-24`]);
      await etcd.put(`${prefix}/subnets/198.19.4.0-24`, 'not json');
      await waitFor('four events', async () => seen.length >= 4);
      expect(seen).toEqual([
        'added 198.19.1.0/24 198.18.5.1',
        'added 198.19.3.0/24 198.18.5.3',
        'changed 198.19.1.0/24 198.18.5.11',
        'removed 198.19.3.0/24 198.18.5.3',
      ]);
      expect(watcher.peers().map((l) => formatIpv4Net(l.subnet))).toEqual(['198.19.1.0/24']);
    });
  });

  it('keeps watching across an etcd restart and delivers what changed after it', async () => {
    const prefix = await etcd.network();
    await watching(new EtcdRegistry({ endpoints: [etcd.endpoint], prefix }), async (seen) => {
      await etcd.kill();
      await etcd.launch();
      await etcd.put(`${prefix}/subnets/198.19.7.0-24`, '{"PublicIP":"198.18.5.7"}');
      await waitFor('the peer added after the restart', async () => seen.includes('added 198.19.7.0/24 198.18.5.7'), 20_000);
    });
  });

  it('when etcd has compacted past the watch revision, lists again and misses nothing', async () => {
    const prefix = await etcd.network();
    const real = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    await etcd.put(`${prefix}/subnets/198.19.8.0-24`, '{"PublicIP":"198.18.5.8"}');
    const status = JSON.parse(await etcd.ctl(['endpoint', 'status', '-w', 'json'])) as { Status: { header: { revision: number } } }[];
    await etcd.ctl(['compact', String(status[0].Status.header.revision)]);
    // The first watch starts from revision 1, long compacted: exactly what a watcher that fell behind sees.
    let first = true;
    const registry: Registry = Object.assign(Object.create(real) as Registry, {
      watchSubnets: (rev: string, onEvent: Parameters<Registry['watchSubnets']>[1], onError: Parameters<Registry['watchSubnets']>[2]) => {
        const from = first ? '0' : rev;
        first = false;
        return real.watchSubnets(from, onEvent, onError);
      },
    });
    await watching(registry, async (seen) => {
      // Changed while the watch is failing: the re-list must pick it up.
      await etcd.put(`${prefix}/subnets/198.19.9.0-24`, '{"PublicIP":"198.18.5.9"}');
      await waitFor('the change made during the failed watch', async () => seen.includes('added 198.19.9.0/24 198.18.5.9'), 15_000);
      await etcd.put(`${prefix}/subnets/198.19.10.0-24`, '{"PublicIP":"198.18.5.10"}');
      await waitFor('later changes through the new watch', async () => seen.includes('added 198.19.10.0/24 198.18.5.10'));
      expect(seen.filter((s) => s.startsWith('added 198.19.8.0/24'))).toHaveLength(1);
    });
  });

  it('does not route leases outside Network or overlapping another lease or ours, until the conflict is gone', async () => {
    const prefix = await etcd.network();
    await etcd.put(`${prefix}/subnets/198.19.1.0-24`, '{"PublicIP":"198.18.5.1"}');
    await etcd.put(`${prefix}/subnets/198.19.2.0-24`, '{"PublicIP":"198.18.5.99"}'); // ours
    const registry = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    const warnings = loggedEvents(['warn']);
    await watching(
      registry,
      async (seen, watcher) => {
        await etcd.put(`${prefix}/subnets/198.20.0.0-24`, '{"PublicIP":"198.18.5.20"}'); // outside 198.19.0.0/16
        await etcd.put(`${prefix}/subnets/198.19.2.128-25`, '{"PublicIP":"198.18.5.21"}'); // inside our /24
        await etcd.put(`${prefix}/subnets/198.19.1.0-25`, '{"PublicIP":"198.18.5.22"}'); // inside a peer's /24
        await etcd.put(`${prefix}/subnets/198.19.5.0-24`, '{"PublicIP":"198.18.5.5"}'); // fine
        await waitFor('the clean lease', async () => seen.includes('added 198.19.5.0/24 198.18.5.5'));
        // The peer whose /24 the /25 overlaps is withdrawn too: of two overlapping leases neither is trusted.
        expect(seen).toEqual(['added 198.19.1.0/24 198.18.5.1', 'removed 198.19.1.0/24 198.18.5.1', 'added 198.19.5.0/24 198.18.5.5']);
        expect(watcher.ignoredCounts()).toEqual({ outside_network: 1, overlap: 3 });
        // One warning per conflict, naming both sides: the lease and the Network it lies outside, or the two keys.
        const key = (k: string) => `${prefix}/subnets/${k}`;
        expect(warnings.fields().filter((w) => w.event === 'lease-ignored').map(({ key, conflict, reason }) => ({ key, conflict, reason }))).toEqual([
          { key: key('198.20.0.0-24'), conflict: '198.19.0.0/16', reason: 'outside_network' },
          { key: key('198.19.2.128-25'), conflict: key('198.19.2.0-24'), reason: 'overlap' },
          { key: key('198.19.1.0-24'), conflict: key('198.19.1.0-25'), reason: 'overlap' },
        ]);
        await etcd.ctl(['del', `${prefix}/subnets/198.19.1.0-25`]);
        await waitFor('the peer routed again', async () => seen.at(-1) === 'added 198.19.1.0/24 198.18.5.1');
        expect(watcher.ignoredCounts()).toEqual({ outside_network: 1, overlap: 1 });
        expect(watcher.peers().map((l) => formatIpv4Net(l.subnet)).sort()).toEqual(['198.19.1.0/24', '198.19.5.0/24']);
      },
      '198.19.2.0/24',
    );
  });

  it('a first listing that fails (one etcd member down) is retried, not fatal', async () => {
    const prefix = await etcd.network();
    await etcd.put(`${prefix}/subnets/198.19.11.0-24`, '{"PublicIP":"198.18.5.11"}');
    const real = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    let failures = 2;
    const registry: Registry = Object.assign(Object.create(real) as Registry, {
      getSubnets: () => (failures-- > 0 ? Promise.reject(new EtcdUnavailableError('etcd at a dead member did not answer')) : real.getSubnets()),
      close: () => real.close(),
    });
    await watching(registry, async (seen) => {
      expect(failures).toBe(-1);
      expect(seen).toEqual(['added 198.19.11.0/24 198.18.5.11']);
    });
  });
});
