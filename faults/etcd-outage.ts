import { readFile } from 'node:fs/promises';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { sleep } from '../testbed/interrupt.js';
import { iperfFor, pingFor } from './observe.js';
import { run, type ScenarioResult } from './scenario.js';
import { withTwoHosts } from './two-hosts.js';

export interface EtcdOutageOptions {
  /** How long etcd stays down. */
  readonly outageS: number;
  /** Lease TTL: renewals come every TTL/2, so one falls inside the outage when TTL/2 < outage. */
  readonly ttlS: number;
}

/**
 * 1. etcd stopped (SIGKILL) for `outageS` while containers on two hosts exchange pings and an iperf3 stream.
 * Expected: no ping lost, both flanneld stay up and log the failed renewals, then renew and keep their subnets.
 */
export function etcdOutage(o: EtcdOutageOptions): Promise<ScenarioResult> {
  const env = { FLANNELD_SUBNET_LEASE_TTL: String(o.ttlS), FLANNELD_RETRY_INTERVAL_MS: '2000' };
  return run('etcd-outage', (f) =>
    withTwoHosts('fout', { a: env, b: env }, async ({ cluster, a, b }) => {
      const subnets = [a.bridgeCidr, b.bridgeCidr];
      const trafficS = o.outageS + o.ttlS + 4;
      const pings = pingFor(cluster.bed, a.container!.ns, b.container!.ip, trafficS);
      const iperf = iperfFor(cluster.bed, b.container!.ns, a.container!.ns, b.container!.ip, trafficS);
      await sleep(2_000);

      await cluster.etcd.kill();
      const stoppedAt = Date.now();
      await sleep(o.outageS * 1000);
      const mark = a.daemon.mark();
      await cluster.etcd.launch();
      const backAt = Date.now();
      const renewed = await a.daemon.waitForEvent('lease-renewed', {}, { timeoutMs: (o.ttlS + 10) * 1000, after: mark }).then(
        () => true,
        () => false,
      );
      const renewedAfterS = (Date.now() - backAt) / 1000;
      const [ping, gbits] = await Promise.all([pings, iperf]);

      const during = (e: Record<string, unknown>) => Number(e.time) >= stoppedAt && Number(e.time) <= backAt;
      const failedRenewals = a.daemon.events().filter((e) => e.event === 'lease-renew-failed' && during(e)).length;
      f.set('outage_s', o.outageS);
      f.set('ttl_s', o.ttlS);
      f.set('pings', ping.transmitted);
      f.set('pings_lost', ping.transmitted - ping.received);
      f.set('iperf_gbit_s', gbits);
      f.set('renewals_failed', failedRenewals);
      f.set('renewed_after_s', renewedAfterS);
      f.expect(ping.transmitted - ping.received === 0, `${ping.transmitted - ping.received} pings lost`);
      f.expect(gbits > 0, 'the iperf3 stream carried nothing');
      f.expect(a.daemon.running && b.daemon.running, 'a flanneld exited');
      f.expect(failedRenewals > 0, 'no failed renewal was logged during the outage');
      f.expect(renewed, 'no renewal after etcd came back');
      const clear = a.daemon.events().filter((e) => e.event === 'lease-renew-failed' && during(e)).every((e) => /did not answer/.test(String(e.msg)));
      f.expect(clear, 'a failed renewal was logged without saying that etcd did not answer');
      for (const host of [a, b]) {
        const now = parseEnvFile(await readFile(host.subnetFile, 'utf8')).FLANNEL_SUBNET;
        f.expect(subnets.includes(now) && now === host.bridgeCidr, `${host.name} moved from ${host.bridgeCidr} to ${now}`);
        f.expect(!host.daemon.events().some((e) => e.event === 'lease-lost' || e.event === 'lease-moved'), `${host.name} lost its lease`);
      }
    }),
  );
}
