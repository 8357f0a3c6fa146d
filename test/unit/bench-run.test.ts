import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../../bench/figures.js';
import { IPERF_RUNS, iperfArgv } from '../../bench/measure.js';
import { DEFAULT_ROUNDS, MIN_PUBLISH_ROUNDS, OMIT_SECONDS } from '../../bench/method.js';
import { benchPaths, type BenchPath, type ReadyPath } from '../../bench/paths.js';
import type { BinaryInfo } from '../../bench/report.js';
import { runStamp, saveRun } from '../../bench/results.js';
import { runRounds, type PathState } from '../../bench/rounds.js';
import { TABLE_END, TABLE_START } from '../../bench/readme-table.js';
import { report } from '../helpers/bench-report.js';
import { useTempDir } from '../helpers/fixtures.js';

const flannelTs: BinaryInfo = { product: 'flannel-ts', version: '0.1.0', path: 'dist/src/cli/flanneld.js', commit: 'abc1234' };
const flannelBin: BinaryInfo = { product: 'flannel', version: 'v0.20.2', path: '/opt/flanneld-go' };

/** A path state as setUpPaths leaves it: ready (its target names it) or unavailable. */
function state(name: string, ready: boolean): PathState {
  const path = { name } as BenchPath;
  return ready ? { path, ready: { client: 'a', server: 'b', target: name, mtu: 1500 }, samples: [], errors: [] } : { path, reason: 'cannot exist here', samples: [], errors: [] };
}

const sample = (tcp1Gbps: number): Sample => ({ tcp1Gbps, tcp4Gbps: NaN, udpSmallKpps: NaN, rttMs: NaN, cpuSecondsPerGB: NaN });

describe('bench rounds', () => {
  it('measures every ready path once per round, in order, before the next round starts', async () => {
    const states = [state('A', true), state('B', true), state('gone', false), state('C', true)];
    const measured: string[] = [];
    const measure = async (ready: ReadyPath) => {
      measured.push(ready.target);
      return { sample: sample(measured.length), errors: ready.target === 'B' ? ['tcp 1 stream: refused'] : [] };
    };
    const seconds = await runRounds(states, measure, { rounds: DEFAULT_ROUNDS, say: () => undefined });
    expect(DEFAULT_ROUNDS).toBeGreaterThanOrEqual(3);
    expect(measured).toEqual(Array.from({ length: DEFAULT_ROUNDS }, () => ['A', 'B', 'C']).flat());
    expect(seconds).toHaveLength(DEFAULT_ROUNDS);
    // Each path keeps one sample per round, in round order; the unavailable one none.
    expect(states[0].samples.map((s) => s.tcp1Gbps)).toEqual([1, 4, 7]);
    expect(states[3].samples.map((s) => s.tcp1Gbps)).toEqual([3, 6, 9]);
    expect(states[2].samples).toEqual([]);
    expect(states[1].errors).toEqual([1, 2, 3].map((round) => ({ round, message: 'tcp 1 stream: refused' })));
  });
});

describe('iperf3 argv', () => {
  for (const [name, run] of Object.entries(IPERF_RUNS)) {
    it(`${name}: leaves out the first ${OMIT_SECONDS} s, reports JSON, against a one-off foreground server`, () => {
      const { server, client } = iperfArgv('198.19.0.2', 5301, run);
      expect(OMIT_SECONDS).toBeGreaterThanOrEqual(1);
      expect(client.slice(0, 7)).toEqual(['iperf3', '-c', '198.19.0.2', '-p', '5301', '-t', String(run.seconds)]);
      expect(client[client.indexOf('-O') + 1]).toBe(String(OMIT_SECONDS));
      expect(client).toContain('-J');
      expect(client.slice(client.length - run.args.length)).toEqual([...run.args]);
      expect(server).toEqual(['iperf3', '-s', '-1', '-B', '198.19.0.2', '-p', '5301']);
      // -D would daemonize it out of reach of the kill that ends each measurement.
      expect(server).not.toContain('-D');
    });
  }

  it('runs 1 and 4 TCP streams and 64-byte UDP datagrams', () => {
    expect(IPERF_RUNS.tcp4.args).toEqual(['-P', '4']);
    expect(IPERF_RUNS.udpSmall.args).toEqual(['-u', '-l', '64', '-b', '0']);
  });
});

describe('bench paths', () => {
  const mtu = (p: BenchPath) => Number(/^\d+/.exec(p.mtuNote)?.[0]);

  it('has the references and every flannel-ts backend, each at its own default MTU', () => {
    const paths = benchPaths({ flannelTs });
    const byName = new Map(paths.map((p) => [p.name, p]));
    expect(new Map([...byName].map(([name, p]) => [name, mtu(p)]))).toEqual(
      new Map([
        ['bare-lan', 1500],
        ['kernel-vxlan', 1450],
        ['naive-relay', 1472],
        ['flannel-ts-udp', 1472],
        ['flannel-ts-udp-ebpf', 1472],
        ['flannel-ts-vxlan', 1450],
        ['flannel-ts-host-gw', 1500],
      ]),
    );
    for (const name of ['flannel-ts-udp', 'flannel-ts-udp-ebpf', 'flannel-ts-vxlan', 'flannel-ts-host-gw']) expect(byName.get(name)!.binary).toBe(flannelTs);
    expect(paths.map((p) => p.name).slice(0, 2)).toEqual(['bare-lan', 'kernel-vxlan']);
  });

  it('adds the --flannel-bin flanneld as a udp path, named by its version, only when given', () => {
    const other = benchPaths({ flannelTs, flannelBin }).find((p) => p.name === 'flannel-bin-udp')!;
    expect(other).toMatchObject({ label: 'flannel v0.20.2 udp', binary: flannelBin });
    expect(mtu(other)).toBe(1472);
    expect(benchPaths({ flannelTs }).some((p) => p.name === 'flannel-bin-udp')).toBe(false);
  });
});

describe('bench result files', () => {
  const dir = useTempDir('bench-results');
  const readme = `# flannel-ts\n${TABLE_START}\nold table\n${TABLE_END}\n`;

  async function root(name: string): Promise<string> {
    const path = dir.file(name);
    await mkdir(`${path}/bench/results`, { recursive: true });
    await writeFile(`${path}/README.md`, readme);
    await writeFile(`${path}/bench/results/latest.json`, 'old\n');
    return path;
  }

  it('without --publish writes only the run, never latest.* or the README', async () => {
    const path = await root('unpublished');
    const saved = await saveRun(report(), '<svg/>', false, path);
    const stamp = runStamp(new Date(report().date));
    expect(saved).toEqual({ run: [`${path}/bench/results/runs/${stamp}.json`, `${path}/bench/results/runs/${stamp}.svg`], published: [] });
    expect(JSON.parse(await readFile(saved.run[0], 'utf8'))).toEqual(report());
    expect(await readdir(`${path}/bench/results`)).toEqual(['latest.json', 'runs']);
    expect(await readFile(`${path}/bench/results/latest.json`, 'utf8')).toBe('old\n');
    expect(await readFile(`${path}/README.md`, 'utf8')).toBe(readme);
  });

  it('with --publish also replaces latest.* and the README table', async () => {
    const path = await root('published');
    const saved = await saveRun(report(), '<svg/>', true, path);
    expect(saved.published).toEqual([`${path}/bench/results/latest.json`, `${path}/bench/results/latest.svg`, `${path}/README.md`]);
    expect(JSON.parse(await readFile(`${path}/bench/results/latest.json`, 'utf8'))).toEqual(report());
    expect(await readFile(`${path}/README.md`, 'utf8')).toContain('| bare LAN | – | 1500 |');
  });

  it('refuses to publish fewer than MIN_PUBLISH_ROUNDS rounds, leaving the reference as it was', async () => {
    expect(MIN_PUBLISH_ROUNDS).toBeGreaterThanOrEqual(3);
    const path = await root('too-few');
    const short = { ...report(), rounds: { ...report().rounds, count: MIN_PUBLISH_ROUNDS - 1 } };
    await expect(saveRun(short, '<svg/>', true, path)).rejects.toThrow(`not published: ${MIN_PUBLISH_ROUNDS - 1} rounds, at least ${MIN_PUBLISH_ROUNDS} needed`);
    expect(await readFile(`${path}/bench/results/latest.json`, 'utf8')).toBe('old\n');
    expect(await readFile(`${path}/README.md`, 'utf8')).toBe(readme);
  });
});
