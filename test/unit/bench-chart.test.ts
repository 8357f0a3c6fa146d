import { describe, expect, it } from 'vitest';
import { renderChart } from '../../bench/chart.js';
import type { Sample } from '../../bench/figures.js';
import { computeRatios, summarizeSamples, type BenchReport, type PathReport } from '../../bench/report.js';

const sample = (tcp1Gbps: number, rttMs: number): Sample => ({ tcp1Gbps, tcp4Gbps: tcp1Gbps * 2, udpSmallKpps: 100, rttMs, cpuSecondsPerGB: 1 });

describe('bench chart', () => {
  const paths: PathReport[] = [
    { name: 'bare-lan', label: 'bare LAN', mtuNote: '', status: 'measured', figures: summarizeSamples([sample(10, 0.02), sample(12, 0.02), sample(11, 0.03)]) },
    { name: 'kernel-vxlan', label: 'kernel VXLAN', mtuNote: '', status: 'measured', figures: summarizeSamples([sample(8, 0.05), sample(8, 0.05), sample(8, 0.05)]) },
    { name: 'flannel-ts-udp', label: 'flannel-ts udp', mtuNote: '', status: 'measured', figures: summarizeSamples([sample(4, 0.2), sample(6, 0.2), sample(5, 0.2)]) },
    { name: 'flannel-ts-vxlan', label: 'flannel-ts vxlan', mtuNote: '', status: 'unavailable', reason: 'flanneld: unknown backend type: vxlan' },
  ];
  const report = { rounds: { count: 3, order: [], seconds: [] }, paths, ratios: computeRatios(paths) } as unknown as BenchReport;
  const svg = renderChart(report, 'title <run>', ['machine: 2 cores']);

  it('draws a bar with a min–max whisker per figure of each measured path, three bars per group', () => {
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    // 3 paths × (1 + 2 streams + RTT) bars, plus the white background and the legend swatches.
    expect(svg.match(/<path d="M/g)).toHaveLength(9);
    expect(svg).toContain('title &lt;run>');
  });

  it('labels each group with its ratios of medians to bare LAN and kernel VXLAN', () => {
    expect(svg).toContain('0.455× bare LAN'); // 5 / 11
    expect(svg).toContain('0.625× kernel VXLAN'); // 5 / 8
    expect(svg).toContain('4.00× kernel VXLAN'); // RTT 0.2 / 0.05
  });

  it('lists an unavailable path with its reason instead of a group, and says what the bars are', () => {
    expect(svg).toContain('flannel-ts vxlan: unavailable: flanneld: unknown backend type: vxlan');
    expect(svg).toContain('bars: median of 3 interleaved rounds; whiskers: lowest to highest round');
    expect(svg).not.toMatch(/text-anchor="middle">flannel-ts vxlan</);
  });
});
