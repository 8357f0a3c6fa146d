// npm run bench:restart: what a flanneld restart costs container traffic, per backend. Two hosts with a container
// each; a ping every 10 ms from host 2's container to host 1's while host 1's flanneld gets SIGTERM and is started
// again, ROUNDS times per backend. Writes bench/results/runs/restart-<stamp>.json; `-- --publish` also makes it
// bench/results/restart-latest.json.
import { rm } from 'node:fs/promises';
import { errorMessage } from '../src/errors.js';
import { exitCode, handleInterrupts, interruptedBy } from '../testbed/interrupt.js';
import { OverlayCluster } from '../testbed/overlay.js';
import { pingThroughRestart, type RestartLoss } from '../testbed/restart-probe.js';
import { makeTempDir } from '../testbed/tempdir.js';
import { publishRequested, saveSideRun } from './results.js';

const ROUNDS = 3;
/** The event after which each backend carries traffic again: the kernel ones once reconciled, udp once its TUN is up. */
const BACKENDS: [type: string, readyEvent: string][] = [
  ['udp', 'subnet-file-written'],
  ['vxlan', 'peers-reconciled'],
  ['host-gw', 'peers-reconciled'],
];

interface BackendResult {
  readonly rounds: RestartLoss[];
  /** Echo requests lost per restart, each round. */
  readonly lost: number[];
  /** Traffic outage per restart: the lost requests times the interval ping actually kept. */
  readonly outageMs: number[];
}

async function measure(type: string, readyEvent: string): Promise<BackendResult> {
  let dir: string | undefined;
  let cluster: OverlayCluster | undefined;
  try {
    dir = await makeTempDir('restart');
    cluster = await OverlayCluster.create('rst', dir, JSON.stringify({ Network: '198.19.0.0/16', Backend: { Type: type } }));
    const [h1, h2] = await cluster.addHostsWithContainers(2);
    await cluster.expectReachable(h2, h1);
    const rounds: RestartLoss[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      rounds.push(await pingThroughRestart(cluster, h2, h1, h1, { readyEvent }));
      await cluster.expectReachable(h2, h1);
    }
    return { rounds, lost: rounds.map((r) => r.lost), outageMs: rounds.map((r) => Math.round((r.lost * r.durationMs) / r.sent)) };
  } finally {
    await cluster?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const publish = publishRequested('bench:restart');
  const date = new Date();
  handleInterrupts((line) => process.stderr.write(`${line}\n`));
  const results: Record<string, BackendResult> = {};
  for (const [type, readyEvent] of BACKENDS) {
    process.stdout.write(`restarting flanneld (${type}) ${ROUNDS} times under a 10 ms ping ...\n`);
    results[type] = await measure(type, readyEvent);
    const r = results[type];
    process.stdout.write(`  lost ${r.rounds.map((x) => `${x.lost}/${x.sent}`).join(', ')} (outage ~${r.outageMs.join(', ')} ms; restart ${r.rounds.map((x) => x.restartMs).join(', ')} ms)\n`);
  }
  const report = {
    date: date.toISOString(),
    method: `2 hosts, a container each; ping -i 0.01 from host 2's container to host 1's while host 1's flanneld is stopped with SIGTERM and started again (until its readiness event), ${ROUNDS} rounds per backend; lost = echo requests without a reply`,
    results,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const files = await saveSideRun('restart', date, json, publish);
  process.stdout.write(`wrote ${files.join(', ')}\n`);
}

main().then(
  () => process.exit(exitCode(0)),
  (err) => {
    if (!interruptedBy()) process.stderr.write(`restart bench failed: ${errorMessage(err)}\n`);
    process.exit(exitCode(1));
  },
);
