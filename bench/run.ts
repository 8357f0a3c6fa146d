// npm run bench: every packet path measured in interleaved rounds of one run on this machine, so that ratios between
// paths mean something even though absolute numbers move from run to run. Writes bench/results/runs/<stamp>.{json,svg};
// only --publish changes the committed reference (bench/results/latest.*) and the README's table.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { loadNativeAddon, type PlatformCosts } from '../src/datapath/native.js';
import { errorMessage } from '../src/errors.js';
import { packageRoot, packageVersion } from '../src/package-info.js';
import { FLANNELD } from '../testbed/flanneld.js';
import { exitCode, handleInterrupts, interruptedBy, interruption } from '../testbed/interrupt.js';
import { clockTicksPerSecond } from '../testbed/proc.js';
import { renderChart } from './chart.js';
import { BenchLan } from './lan.js';
import { measureSample, waitReachable } from './measure.js';
import { describeMethod, roundsText } from './method.js';
import { BenchUsageError, parseBenchOptions } from './options.js';
import { benchPaths, type BenchPath, type ReadyPath } from './paths.js';
import { renderReadmeTable } from './readme-table.js';
import { runRounds, type PathState } from './rounds.js';
import { computeRatios, summarizeSamples, type BenchReport, type BinaryInfo, type PathReport } from './report.js';
import { publishRun, saveRun } from './results.js';

const run = promisify(execFile);
const say = (line: string) => process.stdout.write(`${line}\n`);

/** One line for the chart and the console: what this machine charges a userspace tunnel per syscall and wakeup. */
function describePlatform(p: PlatformCosts, cores: number): string {
  const us = (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n)} µs`;
  const cross = p.wakeupCrossCpu ? `, on another CPU ${us(p.wakeupCrossCpu.roundTripUs)} (${us(p.wakeupCrossCpu.wakerUs)} of it in the waker)` : '';
  return `${cores} cores; syscall ${us(p.syscallUs)}; thread wakeup round trip on the same CPU ${us(p.wakeupSameCpu.roundTripUs)}${cross}`;
}

/** Our flanneld: the built CLI, its package version and the commit it was built from ("-dirty" with local edits). */
async function flannelTsBinary(): Promise<BinaryInfo> {
  const root = packageRoot();
  const git = (args: string[]) => run('git', ['-C', root, ...args]).then((r) => r.stdout.trim(), () => undefined);
  const commit = await git(['rev-parse', '--short', 'HEAD']);
  const dirty = commit && (await git(['status', '--porcelain', '--untracked-files=no', '--', 'src', 'native']));
  return { product: 'flannel-ts', version: packageVersion(), path: relative(root, FLANNELD), commit: commit && `${commit}${dirty ? '-dirty' : ''}` };
}

/** The flanneld given with --flannel-bin, by what its --version prints. */
async function externalBinary(path: string): Promise<BinaryInfo> {
  const abs = resolve(path);
  const out = await run(abs, ['--version'], { timeout: 10_000 }).then(
    (r) => `${r.stdout}${r.stderr}`,
    (err: { stdout?: string; stderr?: string; message: string }) => {
      throw new BenchUsageError(`--flannel-bin ${path}: cannot run it: ${(err.stderr || err.message).trim()}`);
    },
  );
  return { product: 'flannel', version: out.trim().split('\n')[0] || 'unknown version', path: abs };
}

function selectPaths(registry: BenchPath[], names: readonly string[] | undefined): BenchPath[] {
  if (!names) return registry;
  const unknown = names.filter((n) => !registry.some((p) => p.name === n));
  if (unknown.length) throw new BenchUsageError(`unknown path ${unknown.join(', ')}; known: ${registry.map((p) => p.name).join(', ')}${registry.some((p) => p.name === 'flannel-bin-udp') ? '' : ' (flannel-bin-udp with --flannel-bin)'}`);
  return registry.filter((p) => names.includes(p.name));
}

/** Builds every selected path on its own hosts; one that cannot exist here is kept, with its reason. */
async function setUpPaths(lan: BenchLan, paths: BenchPath[]): Promise<PathState[]> {
  const states: PathState[] = [];
  for (const [i, path] of paths.entries()) {
    interruption.throwIfAborted();
    try {
      const ready = await path.setup(lan, `p${i + 1}`);
      await waitReachable(lan.bed, ready);
      states.push({ path, ready, samples: [], errors: [] });
      say(`  ${path.name}: ready, target ${ready.target}, MTU ${ready.mtu}`);
    } catch (err) {
      states.push({ path, reason: errorMessage(err).split('\n')[0], samples: [], errors: [] });
      say(`  ${path.name}: unavailable: ${states.at(-1)!.reason}`);
    }
  }
  return states;
}

function pathReport(state: PathState): PathReport {
  const { path, ready } = state;
  const base = { name: path.name, label: path.label, mtuNote: path.mtuNote, ...(path.binary ? { binary: path.binary } : {}) };
  if (!ready) return { ...base, status: 'unavailable', reason: state.reason };
  const figures = summarizeSamples(state.samples);
  const errors = state.errors.length ? { errors: state.errors } : {};
  if (Object.keys(figures).length === 0) return { ...base, status: 'unavailable', reason: `every measurement failed: ${state.errors[0]?.message}`, ...errors };
  return { ...base, status: 'measured', mtu: ready.mtu, target: ready.target, figures, ...errors };
}

function sayPublished(files: string[]): void {
  say(`published ${files.map((f) => relative(packageRoot(), f)).join(', ')}`);
}

function chartOf(report: BenchReport): string {
  const title = `flannel-ts packet paths, ${roundsText(report.rounds.count)} of one run, ${report.date.slice(0, 16)}Z`;
  return renderChart(report, title, [`machine: ${describePlatform(report.machine.platform, report.machine.cores)}`]);
}

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2), process.env);
  if (options.from) {
    const report = JSON.parse(await readFile(options.from, 'utf8')) as BenchReport;
    sayPublished(await publishRun(report, chartOf(report)));
    return 0;
  }
  const started = Date.now();
  const clockTicks = clockTicksPerSecond();
  const registry = benchPaths({ flannelTs: await flannelTsBinary(), flannelBin: options.flannelBin ? await externalBinary(options.flannelBin) : undefined });
  const paths = selectPaths(registry, options.paths);
  // Measured first, before any path exists: the per-syscall and per-wakeup costs that set how close any userspace
  // tunnel can get to the kernel's (which pays neither), so results from different machines can be read.
  const platform = loadNativeAddon().probePlatform();
  const cores = cpus().length;
  say(`platform: ${describePlatform(platform, cores)}; CLK_TCK ${clockTicks}`);
  say(`setting up ${paths.length} paths, each on its own two hosts of one LAN ...`);

  // An interrupt stops the measurement under way; the finally below removes every process and namespace of the run.
  handleInterrupts((line) => process.stderr.write(`${line}\n`));
  const lan = await BenchLan.create();
  let states: PathState[];
  let roundSeconds: number[];
  try {
    states = await setUpPaths(lan, paths);
    roundSeconds = await runRounds(states, (ready) => measureSample(lan.bed, ready, clockTicks), { rounds: options.rounds, verbose: options.verbose, say });
  } finally {
    const escaped = await lan.cleanup();
    if (escaped.length) {
      process.stderr.write(`bench: these processes of the run escaped the deletion of its namespaces and were killed on their own:\n  ${escaped.map((p) => `${p.pid} ${p.command}`).join('\n  ')}\n`);
      process.exitCode = 1;
    }
  }

  const date = new Date(started);
  const pathReports = states.map(pathReport);
  const report: BenchReport = {
    date: date.toISOString(),
    wallSeconds: Math.round((Date.now() - started) / 1000),
    rounds: { count: options.rounds, order: states.filter((s) => s.ready).map((s) => s.path.name), seconds: roundSeconds },
    machine: { cores, kernel: release(), clockTicks, platform },
    method: describeMethod(options.rounds, paths),
    paths: pathReports,
    ratios: computeRatios(pathReports),
  };
  const svg = chartOf(report);
  say(`\n${renderReadmeTable(report)}\n`);
  const saved = await saveRun(report, svg, options.publish);
  say(`wall time ${report.wallSeconds} s; wrote ${saved.run.map((f) => relative(packageRoot(), f)).join(' and ')}`);
  if (saved.published.length) sayPublished(saved.published);
  return process.exitCode === 1 ? 1 : 0;
}

main().then(
  (code) => process.exit(exitCode(code)),
  (err) => {
    if (!interruptedBy()) process.stderr.write(`bench: ${errorMessage(err)}\n`);
    process.exit(exitCode(err instanceof BenchUsageError ? 2 : 1));
  },
);
