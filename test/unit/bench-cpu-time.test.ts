import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { busyCpuSeconds } from '../../bench/cpu-time.js';
import { clockTicksPerSecond, parseClockTicks } from '../../testbed/proc.js';

//                   user nice system idle  iowait irq softirq steal guest guest_nice
const PROC_STAT = 'cpu  8000 700 3600 15621 688 10 870 20 0 0\ncpu0 4000 350 1800 7810 344 5 435 10 0 0\nintr 1 2 3\n';
const BUSY_TICKS = 8000 + 700 + 3600 + 10 + 870 + 20;

describe('busy CPU time from /proc/stat', () => {
  it('adds user, nice, system, irq, softirq and steal of the whole machine, and converts ticks with CLK_TCK', () => {
    expect(busyCpuSeconds(PROC_STAT, 100)).toBeCloseTo(BUSY_TICKS / 100, 9);
    // A kernel with USER_HZ 250 counts 2.5 times as many ticks per second: the same text is fewer seconds.
    expect(busyCpuSeconds(PROC_STAT, 250)).toBeCloseTo(BUSY_TICKS / 250, 9);
  });

  it('refuses a /proc/stat without the whole-machine line', () => {
    expect(() => busyCpuSeconds('cpu0 1 2 3 4 5 6 7 8\n', 100)).toThrow(/no "cpu " line/);
  });

  it('reads CLK_TCK from getconf, and accepts only a positive integer', () => {
    expect(clockTicksPerSecond()).toBe(Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })));
    expect(parseClockTicks('250\n')).toBe(250);
    for (const bad of ['', 'undefined', '0', '-100', '99.5']) expect(() => parseClockTicks(bad)).toThrow(/CLK_TCK/);
  });
});
