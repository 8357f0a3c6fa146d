import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../src/datapath/native.js';

const addon = loadNativeAddon();

// The probe is a measurement, so only its shape and sanity are checked here, never its speed.
describe('platform probe (npm run bench)', () => {
  it('reports a syscall cost and wakeup round trips that contain the waker’s own share', () => {
    const p = addon.probePlatform({ iterations: 20 });
    expect(p.syscallUs).toBeGreaterThan(0);
    expect(Number.isFinite(p.syscallUs)).toBe(true);
    const wakeups = [p.wakeupSameCpu, ...(p.wakeupCrossCpu ? [p.wakeupCrossCpu] : [])];
    for (const w of wakeups) {
      expect(w.roundTripUs).toBeGreaterThan(0);
      expect(w.wakerUs).toBeGreaterThan(0);
      expect(w.wakerUs).toBeLessThanOrEqual(w.roundTripUs);
    }
    expect(p.wakeupCrossCpu !== undefined).toBe(cpus().length > 1);
  });

  it('pins only its own threads, never the calling one', () => {
    // The probe pins threads to CPU 0 and 1; Node's main thread must keep the CPUs it had.
    const allowed = () => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8'))![1];
    const before = allowed();
    addon.probePlatform({ iterations: 5 });
    expect(allowed()).toBe(before);
  });

  it('refuses an iteration count that is not an integer in 1..100000 with a Usage line', () => {
    for (const iterations of [0, -3, 1.5, 200_000, Number.NaN]) {
      expect(() => addon.probePlatform({ iterations })).toThrow(/^Usage: probePlatform/);
    }
  });
});
