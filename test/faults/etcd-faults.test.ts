import { describe, expect, it } from 'vitest';
import { etcdOutage } from '../../faults/etcd-outage.js';
import { leaderKill } from '../../faults/leader-kill.js';
import { formatResult } from '../../faults/scenario.js';

// Short versions of the fault suite's etcd scenarios (`npm run faults` runs them at full length).
describe('fault scenarios: etcd', () => {
  it('etcd stopped while containers talk: no ping lost, renewals fail loudly, then renew on the same subnets', async () => {
    const result = await etcdOutage({ outageS: 8, ttlS: 6 });
    console.log(formatResult(result));
    expect(result.problems).toEqual([]);
    expect(result.figures.pings_lost).toBe(0);
  }, 120_000);

  it('the leader of a 3-member cluster killed: renewals, a new host and `flanneld leases` go through the survivors', async () => {
    const result = await leaderKill({ hosts: 2, ttlS: 6, outageS: 10, leasesRuns: 5 });
    console.log(formatResult(result));
    expect(result.problems).toEqual([]);
    expect(result.figures.leases_failures).toBe(0);
  }, 120_000);
});
