import { describe, expect, it } from 'vitest';
import type { Sample } from '../../bench/figures.js';
import { computeRatios, summarizeSamples, type PathReport } from '../../bench/report.js';
import { median, ratioOfMedians, summarize } from '../../bench/stats.js';

const sample = (tcp1Gbps: number, rttMs = 0.1): Sample => ({ tcp1Gbps, tcp4Gbps: 2 * tcp1Gbps, udpSmallKpps: 100, rttMs, cpuSecondsPerGB: 1 });

function measured(name: string, samples: Sample[]): PathReport {
  return { name, label: name, mtuNote: '', status: 'measured', figures: summarizeSamples(samples) };
}

describe('bench statistics', () => {
  it('takes the median of unsorted odd and even counts', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });

  it('summarizes finite samples and keeps every round, failed ones as null', () => {
    expect(summarize([3, NaN, 1, null, 2])).toEqual({ median: 2, min: 1, max: 3, samples: [3, null, 1, null, 2] });
    expect(summarize([NaN, null])).toBeUndefined();
  });

  it('gives the ratio of medians to three decimals, and none against a zero or missing figure', () => {
    expect(ratioOfMedians(summarize([1, 2, 9]), summarize([3, 3, 3]))).toBe(0.667);
    expect(ratioOfMedians(summarize([1]), summarize([0]))).toBeUndefined();
    expect(ratioOfMedians(summarize([1]), undefined)).toBeUndefined();
  });

  it('summarizes each figure of a path over its rounds', () => {
    const figures = summarizeSamples([sample(9), sample(3), sample(6, NaN)]);
    expect(figures.tcp1Gbps).toEqual({ median: 6, min: 3, max: 9, samples: [9, 3, 6] });
    expect(figures.tcp4Gbps?.median).toBe(12);
    expect(figures.rttMs).toEqual({ median: 0.1, min: 0.1, max: 0.1, samples: [0.1, 0.1, null] });
  });

  it('compares every measured path with the measured reference paths, as ratios of medians (not medians of ratios)', () => {
    // Per-round ratios 10/10, 1/1, 4/2 have median 1; the ratio of medians is 4/2 = 2.
    const ours = measured('flannel-ts-udp', [sample(10), sample(1), sample(4)]);
    const vxlan = measured('kernel-vxlan', [sample(10), sample(1), sample(2)]);
    const bare = measured('bare-lan', [sample(8), sample(8), sample(8)]);
    const missing: PathReport = { name: 'flannel-ts-vxlan', label: 'x', mtuNote: '', status: 'unavailable', reason: 'unknown backend type: vxlan' };
    const ratios = computeRatios([bare, vxlan, ours, missing]);
    expect(ratios['flannel-ts-udp']['kernel-vxlan'].tcp1Gbps).toBe(2);
    expect(ratios['flannel-ts-udp']['bare-lan'].tcp1Gbps).toBe(0.5);
    expect(ratios['kernel-vxlan']['bare-lan'].tcp1Gbps).toBe(0.25);
    expect(ratios['bare-lan']['bare-lan']).toBeUndefined();
    expect(ratios['flannel-ts-vxlan']).toBeUndefined();
    // Not a reference: nothing is compared with flannel-ts-udp.
    expect(ratios['kernel-vxlan']['flannel-ts-udp']).toBeUndefined();
  });
});
