#!/usr/bin/env node
/**
 * `npm run faults`: every fault scenario at full length against real processes (etcd, flanneld, netns hosts), one
 * line of figures each; exit 1 if any expectation failed. Scenario names as arguments run only those.
 */
import { etcdOutage } from './etcd-outage.js';
import { flanneldKill } from './flanneld-kill.js';
import { leaderKill } from './leader-kill.js';
import { malformedFlood } from './malformed-flood.js';
import { massAcquire } from './mass-acquire.js';
import { operatorEdits } from './operator-edits.js';
import { rssSoak } from './rss-soak.js';
import { exitCode, handleInterrupts, interruption } from '../testbed/interrupt.js';
import { formatResult, type ScenarioResult } from './scenario.js';

const SCENARIOS: Record<string, () => Promise<ScenarioResult>> = {
  'etcd-outage': () => etcdOutage({ outageS: 60, ttlS: 20 }),
  'etcd-leader-kill': () => leaderKill({ hosts: 3, ttlS: 10, outageS: 30, leasesRuns: 30 }),
  'flanneld-kill': () => flanneldKill({ rounds: 5 }),
  'malformed-flood': () => malformedFlood({ count: 1_000_000, rate: 20_000 }),
  'mass-acquire': () => massAcquire({ allocators: 500 }),
  'operator-edits': () => operatorEdits(),
  'rss-soak': () => rssSoak({ seconds: 180, sampleEveryS: 10 }),
};

async function main(names: string[]): Promise<number> {
  const unknown = names.filter((n) => !SCENARIOS[n]);
  if (unknown.length) {
    process.stderr.write(`unknown scenario: ${unknown.join(', ')} (known: ${Object.keys(SCENARIOS).join(', ')})\n`);
    return 2;
  }
  // An interrupt stops the scenario under way, which cleans up and reports what it got to; no other starts.
  handleInterrupts((line) => process.stderr.write(`${line}\n`));
  let failed = 0;
  for (const name of names.length ? names : Object.keys(SCENARIOS)) {
    if (interruption.aborted) break;
    const result = await SCENARIOS[name]();
    process.stdout.write(`${formatResult(result)}\n`);
    if (result.problems.length) failed++;
  }
  process.stdout.write(`\n${failed ? `${failed} scenario(s) failed` : 'every scenario passed'}\n`);
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(exitCode(code)));
