import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeFileAtomic } from '../src/files/atomic-file.js';
import { packageRoot } from '../src/package-info.js';
import { MIN_PUBLISH_ROUNDS } from './method.js';
import { renderReadmeTable, replaceBetweenMarkers } from './readme-table.js';
import type { BenchReport } from './report.js';

// Under `root` (the package root, or a test's temp dir): bench/results/runs/ holds every run (untracked);
// bench/results/latest.* and the README's table are the committed reference, changed only by publishing.
const resultsDir = (root: string) => join(root, 'bench', 'results');

/** 2026-11-25T18-22-47Z: a run's file name, sortable and safe in any file system. */
export function runStamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

export async function writeRunFiles(baseName: string, files: Record<string, string>, root = packageRoot()): Promise<string[]> {
  return writeEach(join(resultsDir(root), 'runs'), Object.fromEntries(Object.entries(files).map(([ext, text]) => [`${baseName}.${ext}`, text])), 'bench result');
}

/** Makes `files` the committed reference: bench/results/<name> for each entry. */
export async function publishResultFiles(files: Record<string, string>, root = packageRoot()): Promise<string[]> {
  return writeEach(resultsDir(root), files, 'bench reference');
}

/**
 * Whether a side bench (`npm run <script>`) is to publish: `--publish` is the one argument it takes; anything else
 * is refused with its usage.
 */
export function publishRequested(script: string, args = process.argv.slice(2)): boolean {
  const extra = args.filter((a) => a !== '--publish');
  if (extra.length) throw new Error(`unknown argument ${extra[0]}; usage: npm run ${script} [-- --publish]`);
  return args.includes('--publish');
}

/**
 * Writes a side bench's report to bench/results/runs/<name>-<stamp>.json and, with `publish`, makes it the
 * committed bench/results/<name>-latest.json; resolves with the files written, relative to `root`.
 */
export async function saveSideRun(name: string, date: Date, json: string, publish: boolean, root = packageRoot()): Promise<string[]> {
  const files = await writeRunFiles(`${name}-${runStamp(date)}`, { json }, root);
  if (publish) files.push(...(await publishResultFiles({ [`${name}-latest.json`]: json }, root)));
  return files.map((f) => relative(root, f));
}

async function writeEach(dir: string, files: Record<string, string>, what: string): Promise<string[]> {
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const file = join(dir, name);
    await writeFileAtomic(file, text, what);
    written.push(file);
  }
  return written;
}

/** The files a run wrote: its own (`run`) and, with --publish, the committed reference it replaced (`published`). */
export interface SavedRun {
  readonly run: string[];
  readonly published: string[];
}

/**
 * Writes a run's report and chart to bench/results/runs/<stamp>.{json,svg}; with `publish`, then also makes them
 * the committed reference (publishRun). Without it, latest.* and the README are never touched.
 */
export async function saveRun(report: BenchReport, svg: string, publish: boolean, root = packageRoot()): Promise<SavedRun> {
  const run = await writeRunFiles(runStamp(new Date(report.date)), { json: reportJson(report), svg }, root);
  return { run, published: publish ? await publishRun(report, svg, root) : [] };
}

/**
 * Makes `report` the committed reference: bench/results/latest.{json,svg} and the README's table (between its
 * bench-table markers). Refused, touching nothing, unless both reference paths were measured over enough rounds.
 */
export async function publishRun(report: BenchReport, svg: string, root = packageRoot()): Promise<string[]> {
  const measured = (name: string) => report.paths.some((p) => p.name === name && p.status === 'measured');
  if (!measured('bare-lan') || !measured('kernel-vxlan')) throw new Error('not published: the reference paths bare-lan and kernel-vxlan must both be measured');
  if (report.rounds.count < MIN_PUBLISH_ROUNDS) throw new Error(`not published: ${report.rounds.count} rounds, at least ${MIN_PUBLISH_ROUNDS} needed`);
  const written = await publishResultFiles({ 'latest.json': reportJson(report), 'latest.svg': svg }, root);
  const readme = join(root, 'README.md');
  // Atomically: a reader never sees half a README.
  await writeFileAtomic(readme, replaceBetweenMarkers(await readFile(readme, 'utf8'), renderReadmeTable(report)), 'README');
  return [...written, readme];
}

function reportJson(report: BenchReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
