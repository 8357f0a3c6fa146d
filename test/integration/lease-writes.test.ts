import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../../src/config/parse-network-config.js';
import { ETCD_LOOP_GRACE_MS, livenessOf } from '../../src/health/loop-pulse.js';
import { formatIpv4Net, parseIpv4Net, type Ipv4Net } from '../../src/ip/ipv4.js';
import { retrySchedule } from '../../src/retry.js';
import { EtcdRegistry } from '../../src/subnet/etcd-registry.js';
import type { Lease, LeaseAttrs, StoredLease } from '../../src/subnet/lease.js';
import { LeaseManager } from '../../src/subnet/lease-manager.js';
import { subnetKey } from '../../src/subnet/subnet-key.js';
import { useEtcd } from '../helpers/fixtures.js';

const etcd = useEtcd();

const CONFIG = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';
const OURS: LeaseAttrs = { PublicIP: '198.18.6.1', BackendType: 'alloc' };
const THEIRS = '{"PublicIP":"198.18.6.2","BackendType":"alloc"}';

/**
 * A registry on which another host takes our subnet between our read and our next rewrite of the key, once armed:
 * the key is deleted (it expired, or an operator removed it) and the other host creates it, as a real race would
 * have it, but deterministically.
 */
class RacedRegistry extends EtcdRegistry {
  armed = false;

  override async updateSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number, modRevision: string): Promise<Lease | undefined> {
    if (this.armed) {
      this.armed = false;
      const key = this.subnetsPrefix + subnetKey(subnet);
      await etcd.ctl(['del', key]);
      await etcd.put(key, THEIRS);
    }
    return super.updateSubnet(subnet, attrs, ttlSeconds, modRevision);
  }
}

/** How many etcd leases exist (`etcdctl lease list` says `found N leases`). */
async function leaseCount(): Promise<number> {
  return Number(/found (\d+) leases?/.exec(await etcd.ctl(['lease', 'list']))?.[1]);
}

describe('rewrites of our own lease key never overwrite another host\'s (real etcd)', () => {
  it('updateSubnet with the revision read before the key was re-created by another host writes nothing, and revokes its etcd lease', async () => {
    const prefix = await etcd.network(CONFIG);
    const registry = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    try {
      const subnet = parseIpv4Net('198.19.5.0/24');
      const key = `${prefix}/subnets/198.19.5.0-24`;
      expect(await registry.createSubnet(subnet, OURS, 60)).toBeDefined();
      const read = await registry.getSubnet(subnet);
      await etcd.ctl(['del', key]);
      await etcd.put(key, THEIRS);
      const leases = await leaseCount();

      expect(await registry.updateSubnet(subnet, OURS, 60, read!.modRevision)).toBeUndefined();
      expect(await etcd.get(key)).toBe(THEIRS);
      expect(await leaseCount()).toBe(leases);

      // With the revision as it is now, the same call writes.
      const current = await registry.getSubnet(subnet);
      expect(await registry.updateSubnet(subnet, OURS, 60, current!.modRevision)).toMatchObject({ subnet, attrs: OURS });
      expect(JSON.parse((await etcd.get(key))!)).toEqual(OURS);
    } finally {
      registry.close();
    }
  });

  it('acquisition: our key, listed, then taken before the rewrite: the other host keeps it and we lease another subnet', async () => {
    const prefix = await etcd.network(CONFIG);
    const registry = new RacedRegistry({ endpoints: [etcd.endpoint], prefix });
    const manager = new LeaseManager({ registry, config: parseNetworkConfig(CONFIG), attrs: OURS, ttlSeconds: 60, renewMarginSeconds: 30, retry: retrySchedule(100) });
    try {
      const subnet = parseIpv4Net('198.19.5.0/24');
      await registry.createSubnet(subnet, OURS, 60);
      registry.armed = true;
      const lease = await manager.acquire();
      expect(registry.armed).toBe(false);
      expect(formatIpv4Net(lease.subnet)).not.toBe('198.19.5.0/24');
      expect(await etcd.get(`${prefix}/subnets/198.19.5.0-24`)).toBe(THEIRS);
      expect(JSON.parse((await etcd.get(`${prefix}/subnets/${subnetKey(lease.subnet)}`))!)).toEqual(OURS);
    } finally {
      manager.stop();
      registry.close();
    }
  });

  it('renewal: our key taken between the read and the rewrite: the lease is lost, not overwritten, and acquired again elsewhere', async () => {
    const prefix = await etcd.network(CONFIG);
    const registry = new RacedRegistry({ endpoints: [etcd.endpoint], prefix });
    // Renewed one second after each acquisition.
    const manager = new LeaseManager({ registry, config: parseNetworkConfig(CONFIG), attrs: OURS, ttlSeconds: 4, renewMarginSeconds: 3, retry: retrySchedule(100) });
    try {
      const first = await manager.acquire();
      const key = `${prefix}/subnets/${subnetKey(first.subnet)}`;
      registry.armed = true;
      const [lost] = (await once(manager, 'lost', { signal: AbortSignal.timeout(15_000) })) as [Lease];
      expect(lost.subnet).toEqual(first.subnet);
      const [from, to] = (await once(manager, 'moved', { signal: AbortSignal.timeout(15_000) })) as [Ipv4Net, Ipv4Net];
      expect(from).toEqual(first.subnet);
      expect(to).not.toEqual(first.subnet);
      expect(await etcd.get(key)).toBe(THEIRS);
      expect(JSON.parse((await etcd.get(`${prefix}/subnets/${subnetKey(to)}`))!)).toEqual(OURS);
    } finally {
      manager.stop();
      registry.close();
    }
  });
});

/** A registry on which, once armed, reading our key never answers: a renewal stuck on an await that never settles. */
class HangingRegistry extends EtcdRegistry {
  armed = false;

  override async getSubnet(subnet: Ipv4Net): Promise<StoredLease | undefined> {
    if (this.armed) return new Promise(() => undefined);
    return super.getSubnet(subnet);
  }
}

describe('the renewal loop\'s liveness (real etcd)', () => {
  it('a renewal that hangs leaves the loop past its due turn: liveness names the lease renewal loop; a turning one never is', async () => {
    const prefix = await etcd.network(CONFIG);
    const config = parseNetworkConfig(CONFIG);
    const hanging = new HangingRegistry({ endpoints: [etcd.endpoint], prefix });
    const healthy = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    // Renewed one second after each acquisition (and each renewal).
    const options = { config, ttlSeconds: 4, renewMarginSeconds: 3, retry: retrySchedule(100) };
    const stuck = new LeaseManager({ ...options, registry: hanging, attrs: OURS });
    const turning = new LeaseManager({ ...options, registry: healthy, attrs: { PublicIP: '198.18.6.3', BackendType: 'alloc' } });
    try {
      await stuck.acquire();
      hanging.armed = true;
      await turning.acquire();
      // Two renewals' time: the turning loop renewed twice and is due again within a second; the stuck one was due
      // four seconds ago. Asked as of just before the grace runs out for a loop due now, only the stuck one is late.
      await once(turning, 'renewed', { signal: AbortSignal.timeout(15_000) });
      await once(turning, 'renewed', { signal: AbortSignal.timeout(15_000) });
      const asOf = Date.now() + ETCD_LOOP_GRACE_MS - 500;
      expect(turning.pulse.stale(asOf)).toBeUndefined();
      expect(stuck.pulse.stale(asOf)).toMatch(/^the lease renewal loop has not turned for \d+ s$/);
      expect(livenessOf([turning.pulse, stuck.pulse], asOf).ok).toBe(false);
    } finally {
      stuck.stop();
      turning.stop();
      hanging.close();
      healthy.close();
    }
  });
});
