import { readFile } from 'node:fs/promises';

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
