import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/files/atomic-file.js';
import { packageRoot } from '../src/package-info.js';
import { renderReadmeTable, replaceBetweenMarkers } from './readme-table.js';

/** bench/results: runs/ holds every run (untracked); latest.* are the committed reference, changed only by publishing. */
const RESULTS_DIR = join(packageRoot(), 'bench', 'results');
const RUNS_DIR = join(RESULTS_DIR, 'runs');

/** 2026-11-25T18-22-47Z: a run's file name, sortable and safe in any file system. */
export function runStamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

export async function writeRunFiles(baseName: string, files: Record<string, string>): Promise<string[]> {
  const written: string[] = [];
  for (const [ext, text] of Object.entries(files)) {
    const file = join(RUNS_DIR, `${baseName}.${ext}`);
    await writeFileAtomic(file, text, 'bench result');
    written.push(file);
  }
  return written;
}

/** Makes `files` the committed reference: bench/results/<name> for each entry. */
export async function publishResultFiles(files: Record<string, string>): Promise<string[]> {
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const file = join(RESULTS_DIR, name);
    await writeFileAtomic(file, text, 'bench reference');
    written.push(file);
  }
  return written;
}

/** Regenerates the README's table (between its bench-table markers) from a report. */
export async function publishReadmeTable(report: Parameters<typeof renderReadmeTable>[0]): Promise<string> {
  const readme = join(packageRoot(), 'README.md');
  // Atomically: a reader never sees half a README.
  await writeFileAtomic(readme, replaceBetweenMarkers(await readFile(readme, 'utf8'), renderReadmeTable(report)), 'README');
  return readme;
}
