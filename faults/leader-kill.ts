import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { EtcdCluster } from '../testbed/etcd.js';
import { flanneldArgs, runFlanneld } from '../testbed/flanneld.js';
import { sleep } from '../testbed/interrupt.js';
import { withLoopbackHosts } from './loopback-hosts.js';
import { run, type ScenarioResult } from './scenario.js';

export interface LeaderKillOptions {
  /** Hosts running before the kill. */
  readonly hosts: number;
  /** Lease TTL, shorter than the outage: without failover a host would lose its lease. */
  readonly ttlS: number;
  /** How long the leader stays dead. */
  readonly outageS: number;
  /** `flanneld leases` runs against the cluster while the leader is dead. */
  readonly leasesRuns: number;
}

const PREFIX = '/faults-leader/network';

/**
 * 2. A 3-member etcd cluster whose leader is SIGKILLed while hosts (alloc backend, loopback) hold leases with a TTL
 * shorter than the outage. Expected: hosts renew through the survivors and keep their subnets, a new host joins, no
 * lease is lost or duplicated, and `flanneld leases` (given every endpoint, as etcdctl is) never fails.
 */
export function leaderKill(o: LeaderKillOptions): Promise<ScenarioResult> {
  return run('etcd-leader-kill', (f) =>
    withLoopbackHosts(
      {
        tag: 'fleader',
        prefix: PREFIX,
        subnet: 6,
        env: { FLANNELD_SUBNET_LEASE_TTL: String(o.ttlS), FLANNELD_RETRY_INTERVAL_MS: '1000' },
        startEtcd: () => EtcdCluster.start(3),
        endpoints: (cluster) => cluster.endpoints.join(','),
      },
      async ({ dir, etcd: cluster, daemons, start }) => {
        await cluster.ctl(['put', `${PREFIX}/config`, '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}']);
        const hosts = Array.from({ length: o.hosts }, (_, i) => start(i + 1));
        await Promise.all(hosts.map((d) => d.waitForEvent('subnet-file-written')));
        const subnetOf = async (host: number) => parseEnvFile(await readFile(join(dir, `${host}.env`), 'utf8')).FLANNEL_SUBNET;
        const before = await Promise.all(hosts.map((_, i) => subnetOf(i + 1)));

        const leader = await cluster.leader();
        await leader.kill();
        const killedAt = Date.now();
        const marks = hosts.map((d) => d.mark());
        const joiner = start(o.hosts + 1);
        let leasesFailures = 0;
        const leasesArgs = ['leases', ...flanneldArgs({ etcdEndpoints: cluster.endpoints.join(','), etcdPrefix: PREFIX })];
        for (let i = 0; i < o.leasesRuns; i++) {
          const { code } = await runFlanneld(leasesArgs, { timeoutMs: 20_000 }).catch(() => ({ code: -1 }));
          if (code !== 0) leasesFailures++;
        }
        const joinedEvent = await joiner.waitForEvent('subnet-file-written', {}, 30_000).catch(() => undefined);
        const joined = joinedEvent ? (Number(joinedEvent.time) - killedAt) / 1000 : -1;
        // The hosts already running learn of the joiner through their (fail-over) peer watch.
        const joinerSubnet = joinedEvent?.subnet;
        const joinerSeenBy = joinerSubnet
          ? await Promise.all(
              hosts.map((d, i) =>
                d.waitForEvent('peer-added', { subnet: joinerSubnet, publicIp: `198.18.6.${o.hosts + 1}` }, { timeoutMs: 30_000, after: marks[i] }).then(
                  () => 1,
                  () => 0,
                ),
              ),
            )
          : [];
        const seenBy = joinerSeenBy.reduce<number>((a, b) => a + b, 0);
        await sleep(Math.max(0, killedAt + o.outageS * 1000 - Date.now()));

        const after = Date.now();
        const renewalsDuring = hosts.map((d) => d.events().filter((e) => e.event === 'lease-renewed' && Number(e.time) > killedAt && Number(e.time) <= after).length);
        const failuresDuring = hosts.map((d) => d.events().filter((e) => e.event === 'lease-renew-failed' && Number(e.time) > killedAt).length);
        const nowSubnets = await Promise.all(hosts.map((_, i) => subnetOf(i + 1)));
        const publicIps = await leasePublicIps(cluster);
        f.set('hosts', o.hosts);
        f.set('ttl_s', o.ttlS);
        f.set('outage_s', o.outageS);
        f.set('renewals_during', renewalsDuring.reduce((a, b) => a + b, 0));
        f.set('renew_failures', failuresDuring.reduce((a, b) => a + b, 0));
        f.set('new_host_joined_s', joined);
        f.set('joiner_seen_by', seenBy);
        f.set('leases_runs', o.leasesRuns);
        f.set('leases_failures', leasesFailures);
        f.set('leases_stored', publicIps.length);
        f.expect(renewalsDuring.every((n) => n >= 1), `a host did not renew during the outage (${renewalsDuring.join(',')})`);
        f.expect(nowSubnets.every((s, i) => s === before[i]), 'a host changed subnet');
        f.expect(hosts.every((d) => !d.events().some((e) => e.event === 'lease-lost' || e.event === 'lease-moved')), 'a host lost its lease');
        f.expect(joined > 0, 'the new host did not join');
        f.expect(seenBy === o.hosts, `only ${seenBy} of ${o.hosts} running hosts logged peer-added for the new host`);
        f.expect(leasesFailures === 0, `flanneld leases failed ${leasesFailures} of ${o.leasesRuns} times`);
        f.expect(publicIps.length === o.hosts + 1 && new Set(publicIps).size === publicIps.length, `leases held: ${publicIps.join(',')}`);
        f.expect(daemons.every((d) => d.running), 'a flanneld exited');
      },
    ),
  );
}

async function leasePublicIps(cluster: EtcdCluster): Promise<string[]> {
  const out = JSON.parse(await cluster.ctl(['get', `${PREFIX}/subnets/`, '--prefix', '-w', 'json'])) as { kvs?: { value: string }[] };
  return (out.kvs ?? []).map((kv) => (JSON.parse(Buffer.from(kv.value, 'base64').toString()) as { PublicIP: string }).PublicIP);
}
