import { describe, expect, it } from 'vitest';
import { massAcquire } from '../../faults/mass-acquire.js';
import { operatorEdits } from '../../faults/operator-edits.js';
import { formatResult } from '../../faults/scenario.js';

// The fault suite's lease scenarios: operator edits at full length, concurrent acquisition with fewer allocators.
describe('fault scenarios: leases', () => {
  it('concurrent lease acquisitions on one etcd: no duplicates', async () => {
    const result = await massAcquire({ allocators: 100 });
    console.log(formatResult(result));
    expect(result.problems).toEqual([]);
    expect(result.figures.duplicates).toBe(0);
  }, 120_000);

  it('concurrent lease acquisitions past their deadline: the allocators are stopped and the scenario fails saying so', async () => {
    // A deadline that no round trip to etcd can meet: the scenario must give up instead of waiting for acquire().
    const result = await massAcquire({ allocators: 20, deadlineS: 0.001 });
    console.log(formatResult(result));
    expect(result.problems).toEqual([expect.stringMatching(/^only \d+ of 20 allocators held a lease after 0.001 s; stopped the rest$/)]);
    expect(result.figures.leased_by_deadline).toBeLessThan(20);
    expect(result.seconds).toBeLessThan(30);
  }, 60_000);

  it('operators editing etcd under a running cluster: no crash, one clear line per edit, the deleted lease retaken on its subnet', async () => {
    const result = await operatorEdits();
    console.log(formatResult(result));
    expect(result.problems).toEqual([]);
    expect(result.figures.same_subnet_back).toBe(true);
  }, 120_000);
});
