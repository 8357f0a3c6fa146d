import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './netns.js';
import { alive, kill, processes } from './proc.js';

const run = promisify(execFile);

/** `ft-<pid>-<tag>-XXXXXX`: the PID of the run that made it, so a later run can tell a crashed run's dir from a live one's. */
const NAME = /^ft-(\d+)-./;

let swept: Promise<void> | undefined;

/**
 * A new directory `ft-<pid>-<tag>-XXXXXX` in the system temp dir, for anything a test, the bench, the demo or a fault
 * scenario writes (subnet files, etcd's data, a dockerd's root, transfer files). The first one a process makes
 * removes those of runs whose process is gone first (removeStaleTempDirs). The caller removes it when done.
 */
export async function makeTempDir(tag: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(tag)) throw new Error(`temp dir tag must be lowercase letters, digits and dashes: ${tag}`);
  swept ??= removeStaleTempDirs();
  await swept;
  return mkdtemp(join(tmpdir(), `ft-${process.pid}-${tag}-`));
}

/** Removes, with removeLeftovers, every `ft-<pid>-…` dir in the system temp dir whose run's process no longer exists. */
async function removeStaleTempDirs(): Promise<void> {
  for (const entry of await readdir(tmpdir())) {
    const match = NAME.exec(entry);
    if (match && !alive(Number(match[1]))) await removeLeftovers(join(tmpdir(), entry));
  }
}

/**
 * Removes a run's dir and everything found again from its path: the processes whose command line names it (an etcd
 * on its data dir, a dockerd, its containerd and shims), the processes in the cgroups named after it and those cgroups
 * (a dockerd's --cgroup-parent), the mounts under it (deepest first, lazily, as a dockerd's netns bind mounts may
 * still be busy), then the dir itself.
 */
export async function removeLeftovers(dir: string): Promise<void> {
  for (const pid of await pidsMentioning(dir)) kill(pid);
  await removeCgroups(dir.split('/').pop()!);
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((target) => target && (target === dir || target.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) await run('umount', ['-l', target]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

async function pidsMentioning(text: string): Promise<number[]> {
  return (await processes()).filter((p) => p.pid !== process.pid && p.argv.some((arg) => arg.includes(text))).map((p) => p.pid);
}

/**
 * Kills the processes in every cgroup named `name` (cgroup v1 has one per controller, some below our own cgroup)
 * and removes the cgroups, deepest first.
 */
async function removeCgroups(name: string): Promise<void> {
  const found: string[] = [];
  const search = async (path: string, depth: number): Promise<void> => {
    const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name === name) found.push(join(path, e.name));
      else if (depth > 0) await search(join(path, e.name), depth - 1);
    }
  };
  await search('/sys/fs/cgroup', 3);
  for (const root of found) {
    for (const d of await subdirs(root)) {
      const procs = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of procs.split('\n').filter(Boolean)) kill(Number(pid));
    }
  }
  for (const root of found) {
    for (const d of (await subdirs(root)).reverse()) {
      // A killed process leaves its cgroup a moment later.
      await waitFor(`cgroup ${d} removed`, () => rmdir(d).then(() => true, (err: NodeJS.ErrnoException) => err.code === 'ENOENT'), 5_000);
    }
  }
}

/** A directory and all directories below it, parents first. */
async function subdirs(root: string): Promise<string[]> {
  const out = [root];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(...(await subdirs(join(root, e.name))));
  }
  return out;
}
