import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The value of `getconf CLK_TCK`: how many ticks /proc/stat counts per second (USER_HZ). */
export function parseClockTicks(text: string): number {
  const ticks = Number(text.trim());
  if (!Number.isInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK printed ${JSON.stringify(text.trim())}, not a positive integer`);
  return ticks;
}

/** USER_HZ of this machine; 100 on most Linux builds, but a kernel may be built otherwise, so it is read. */
export async function clockTicksPerSecond(): Promise<number> {
  return parseClockTicks((await run('getconf', ['CLK_TCK'])).stdout);
}

/**
 * Busy CPU time of the whole machine, in seconds, from the text of /proc/stat: the first ("cpu") line's user, nice,
 * system, irq, softirq and steal ticks (not idle or iowait), divided by `clockTicks`.
 */
export function busyCpuSeconds(procStat: string, clockTicks: number): number {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no "cpu " line');
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / clockTicks;
}

export async function readBusyCpuSeconds(clockTicks: number): Promise<number> {
  return busyCpuSeconds(await readFile('/proc/stat', 'utf8'), clockTicks);
}
