import { describe, expect, it } from 'vitest';
import { flanneldKill } from '../../faults/flanneld-kill.js';
import { malformedFlood } from '../../faults/malformed-flood.js';
import { formatResult } from '../../faults/scenario.js';

// Short versions of the fault suite's datapath scenarios (`npm run faults` runs them at full length).
describe('fault scenarios: flanneld and its datapath', () => {
  it('flanneld SIGKILLed under traffic and restarted: same subnet, pings resume', async () => {
    const result = await flanneldKill({ rounds: 2 });
    console.log(formatResult(result));
    expect(result.problems).toEqual([]);
    expect(result.figures.same_subnet).toBe(true);
  }, 120_000);

  it('malformed datagrams from a rogue host: no crash, no ping lost, every datagram accounted for, RSS flat', async () => {
    const result = await malformedFlood({ count: 20_000, rate: 10_000 });
    console.log(formatResult(result));
    expect(result.problems).toEqual([]);
    expect(result.figures.accounted).toBe(result.figures.sent);
  }, 120_000);
});
