import { parseNetworkConfig } from '../src/config/parse-network-config.js';
import { formatIpv4Net } from '../src/ip/ipv4.js';
import { EtcdRegistry } from '../src/subnet/etcd-registry.js';
import { retrySchedule } from '../src/retry.js';
import { LeaseManager } from '../src/subnet/lease-manager.js';
import { log } from '../src/log.js';
import { EtcdServer } from '../testbed/etcd.js';
import { run, type ScenarioResult } from './scenario.js';

export interface MassAcquireOptions {
  readonly allocators: number;
}

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
      const leases = await Promise.all(managers.map((m) => m.acquire()));
      const seconds = (Date.now() - started) / 1000;
      const distinct = new Set(leases.map((l) => formatIpv4Net(l.subnet))).size;
      const stored = Object.keys(await etcd.dump(`${PREFIX}/subnets/`)).length;
      f.set('allocators', o.allocators);
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
