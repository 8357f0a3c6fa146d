import { execFileSync, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

/** The value of `getconf CLK_TCK`: how many ticks /proc/stat counts per second (USER_HZ). */
export function parseClockTicks(text: string): number {
  const ticks = Number(text.trim());
  if (!Number.isInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK printed ${JSON.stringify(text.trim())}, not a positive integer`);
  return ticks;
}

let clockTicks: number | undefined;

/** USER_HZ of this machine; 100 on most Linux builds, but a kernel may be built otherwise, so it is read (once). */
export function clockTicksPerSecond(): number {
  clockTicks ??= parseClockTicks(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
  return clockTicks;
}

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // comm may hold spaces; fields start at state (3)
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond(); // utime (14) and stime (15)
}

/** The process's resident set size in KiB (VmRSS of /proc/<pid>/status). */
export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}

/** Whether a process with this PID exists (ours to signal: the tests run as root). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL, for cleanup: a process that is gone already is what was wanted. */
export function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Sends `signal` to a child and resolves once it has exited; with `graceMs`, a child still running after that long
 * gets SIGKILL. A child that has exited already is left alone.
 */
export async function terminate(child: ChildProcess, signal: NodeJS.Signals, graceMs?: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  if (graceMs !== undefined) {
    const stopped = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), graceMs))]);
    if (stopped) return;
    child.kill('SIGKILL');
  }
  await exited;
}

/**
 * Every process of the machine with its command line (empty for kernel threads, and for a process that exited
 * while the scan ran).
 */
export async function processes(): Promise<{ pid: number; argv: string[] }[]> {
  const found: { pid: number; argv: string[] }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    found.push({ pid: Number(entry), argv: cmdline ? cmdline.replace(/\0$/, '').split('\0') : [] });
  }
  return found;
}
