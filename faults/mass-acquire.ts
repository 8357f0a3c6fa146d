import { setTimeout as delay } from 'node:timers/promises';
import { parseNetworkConfig } from '../src/config/parse-network-config.js';
import { formatIpv4Net } from '../src/ip/ipv4.js';
import { EtcdRegistry } from '../src/subnet/etcd-registry.js';
import { retrySchedule } from '../src/retry.js';
import { LeaseManager } from '../src/subnet/lease-manager.js';
import { log } from '../src/log.js';
import type { Lease } from '../src/subnet/lease.js';
import { EtcdServer } from '../testbed/etcd.js';
import { interruption } from '../testbed/interrupt.js';
import { run, type ScenarioResult } from './scenario.js';

export interface MassAcquireOptions {
  readonly allocators: number;
  /** Every allocator must hold a lease within this many seconds; then they are stopped and the scenario fails. */
  readonly deadlineS?: number;
}

const DEFAULT_DEADLINE_S = 120;
// After the deadline, how long stopped allocators get to give up their etcd request in flight.
const STOP_GRACE_MS = 10_000;

// Room for 4094 /28s: contention comes from the number of allocators, not from a nearly full network.
const CONFIG = '{"Network":"198.19.0.0/16","SubnetLen":28,"Backend":{"Type":"alloc"}}';
const PREFIX = '/faults-mass/network';

/**
 * 5. `allocators` lease managers, each with its own etcd client as separate hosts would have, acquire at once from
 * one etcd. Expected: every one gets a subnet, no two the same, and etcd holds exactly that many keys.
 */
export function massAcquire(o: MassAcquireOptions): Promise<ScenarioResult> {
  return run('mass-acquire', async (f) => {
    const etcd = new EtcdServer();
    const registries: EtcdRegistry[] = [];
    const managers: LeaseManager[] = [];
    // One "acquired subnet lease" line per allocator says nothing here.
    const level = log.level;
    log.level = 'warn';
    try {
      await etcd.launch();
      registries.push(...Array.from({ length: o.allocators }, () => new EtcdRegistry({ endpoints: [etcd.endpoint], prefix: PREFIX })));
      await etcd.put(`${PREFIX}/config`, CONFIG);
      const config = parseNetworkConfig(CONFIG);
      managers.push(
        ...registries.map(
          (registry, i) =>
            new LeaseManager({ registry, config, attrs: { PublicIP: `198.18.${1 + (i >> 8)}.${i & 255}` }, renewMarginSeconds: 3600, retry: retrySchedule(200) }),
        ),
      );
      const started = Date.now();
      const deadlineS = o.deadlineS ?? DEFAULT_DEADLINE_S;
      const acquiring = Promise.allSettled(managers.map((m) => m.acquire()));
      // An interrupted run (Ctrl-C under `npm run faults`) stops the allocators the same way. Unref'd: a timer left
      // behind after the race must not hold the suite open.
      const deadline = delay(deadlineS * 1000, 'deadline' as const, { ref: false, signal: interruption }).catch(() => 'deadline' as const);
      const outcome = await Promise.race([acquiring, deadline]);
      f.set('allocators', o.allocators);
      if (outcome === 'deadline') {
        managers.forEach((m) => m.stop());
        const settled = await Promise.race([acquiring, delay(STOP_GRACE_MS, [], { ref: false })]);
        const leased = settled.filter((r) => r.status === 'fulfilled').length;
        f.set('leased_by_deadline', leased);
        f.expect(false, `only ${leased} of ${o.allocators} allocators held a lease after ${deadlineS} s; stopped the rest`);
        return;
      }
      const seconds = (Date.now() - started) / 1000;
      const failed = outcome.filter((r) => r.status === 'rejected');
      if (failed.length) throw (failed[0] as PromiseRejectedResult).reason;
      const leases = outcome.map((r) => (r as PromiseFulfilledResult<Lease>).value);
      const distinct = new Set(leases.map((l) => formatIpv4Net(l.subnet))).size;
      const stored = Object.keys(await etcd.dump(`${PREFIX}/subnets/`)).length;
      f.set('all_leased_s', seconds);
      f.set('duplicates', leases.length - distinct);
      f.set('keys_in_etcd', stored);
      f.expect(distinct === o.allocators, `${o.allocators - distinct} duplicate subnets`);
      f.expect(stored === o.allocators, `etcd holds ${stored} leases for ${o.allocators} allocators`);
    } finally {
      log.level = level;
      managers.forEach((m) => m.stop());
      registries.forEach((r) => r.close());
      await etcd.stop();
    }
  });
}
