import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../../bench/figures.js';
import { renderReadmeTable, replaceBetweenMarkers, TABLE_END, TABLE_START } from '../../bench/readme-table.js';
import { computeRatios, summarizeSamples, type BenchReport, type PathReport } from '../../bench/report.js';

const sample = (tcp1Gbps: number, rttMs: number): Sample => ({ tcp1Gbps, tcp4Gbps: tcp1Gbps, udpSmallKpps: 150, rttMs, cpuSecondsPerGB: 1.5 });
const ours = { product: 'flannel-ts', version: '0.1.0', path: 'dist/src/cli/flanneld.js', commit: 'abc1234' };

function report(): BenchReport {
  const paths: PathReport[] = [
    { name: 'bare-lan', label: 'bare LAN', mtuNote: '1500', status: 'measured', mtu: 1500, figures: summarizeSamples([sample(17.6, 0.02), sample(17.1, 0.03), sample(18, 0.02)]) },
    { name: 'kernel-vxlan', label: 'kernel VXLAN', mtuNote: '1450', status: 'measured', mtu: 1450, figures: summarizeSamples([sample(15, 0.05), sample(16, 0.05), sample(14, 0.06)]) },
    { name: 'flannel-ts-udp', label: 'flannel-ts udp', mtuNote: '1472', status: 'measured', mtu: 1472, binary: ours, figures: summarizeSamples([sample(9, 0.2), sample(7.5, 0.25), sample(8, 0.3)]) },
    { name: 'flannel-ts-vxlan', label: 'flannel-ts vxlan', mtuNote: '1450', status: 'unavailable', binary: ours, reason: 'flanneld: unknown backend type: vxlan | udp' },
    {
      name: 'flannel-bin-udp', label: 'flannel v0.20.2 udp', mtuNote: '1472', status: 'measured', mtu: 1472,
      binary: { product: 'flannel', version: 'v0.20.2', path: '/opt/flanneld-go' }, figures: summarizeSamples([sample(0.4, 0.3), sample(0.5, 0.3), sample(0.45, 0.4)]),
    },
  ];
  return {
    date: '2026-11-25T18:32:14.000Z',
    wallSeconds: 300,
    rounds: { count: 3, order: paths.map((p) => p.name), seconds: [90, 95, 100] },
    machine: { cores: 2, kernel: '6.18.0', clockTicks: 100, platform: { syscallUs: 1, wakeupSameCpu: { roundTripUs: 10, wakerUs: 5 } } },
    method: {},
    paths,
    ratios: computeRatios(paths),
  };
}

const cells = (row: string) => row.replace(/\\\|/g, '').split('|').length;

describe('README performance table', () => {
  const table = renderReadmeTable(report());
  const rows = table.split('\n');

  it('says what was run, and gives each figure as median (min–max)', () => {
    expect(table).toContain('Run of 2026-11-25 18:32 UTC: 3 interleaved rounds (95 s each), 2 cores, kernel 6.18.0.');
    expect(rows).toContain('| bare LAN | – | 1500 | 17.6 (17.1–18.0) | 17.6 (17.1–18.0) | 150 (150–150) | 0.020 (0.020–0.030) | 1.50 (1.50–1.50) |');
  });

  it('names the flanneld binary and version of every flanneld-based path', () => {
    expect(rows.find((r) => r.startsWith('| flannel-ts udp |'))).toContain('| flannel-ts 0.1.0 (abc1234) | 1472 | 8.00 (7.50–9.00) |');
    expect(rows.find((r) => r.startsWith('| flannel v0.20.2 udp |'))).toContain('| flannel v0.20.2 (flanneld-go) |');
  });

  it('lists an unavailable path with its reason, escaped, in a row as wide as the header', () => {
    const row = rows.find((r) => r.startsWith('| flannel-ts vxlan |'))!;
    expect(row).toContain('unavailable: flanneld: unknown backend type: vxlan \\| udp');
    expect(cells(row)).toBe(cells(rows[2]));
  });

  it('gives ratios of medians to kernel VXLAN for every figure, and 1-stream TCP to the other references', () => {
    const header = rows.find((r) => r.startsWith('| path | TCP 1 stream vs kernel VXLAN'))!;
    expect(header).toContain('RTT vs kernel VXLAN');
    expect(header).toContain('TCP 1 stream vs bare LAN');
    expect(header).toContain('TCP 1 stream vs flannel v0.20.2 udp');
    // 8 / 15 = 0.533; RTT 0.25 / 0.05 = 5; 8 / 17.6 = 0.455; 8 / 0.45 = 17.8
    expect(rows).toContain('| flannel-ts udp | 0.533× | 0.533× | 1.00× | 5.00× | 1.00× | 0.455× | 17.8× |');
    expect(rows.find((r) => r.startsWith('| kernel VXLAN | –'))).toBeDefined();
  });

  it('replaces only what lies between the markers', () => {
    const readme = `# Title\nbefore\n${TABLE_START}\nold table\n${TABLE_END}\nafter\n`;
    expect(replaceBetweenMarkers(readme, 'new')).toBe(`# Title\nbefore\n${TABLE_START}\nnew\n${TABLE_END}\nafter\n`);
    expect(replaceBetweenMarkers(replaceBetweenMarkers(readme, 'new'), 'new')).toBe(replaceBetweenMarkers(readme, 'new'));
  });

  it('refuses a text whose markers are missing, reversed or repeated', () => {
    expect(() => replaceBetweenMarkers('no markers', 'x')).toThrow(/needs/);
    expect(() => replaceBetweenMarkers(`${TABLE_END}\n${TABLE_START}`, 'x')).toThrow(/needs/);
    expect(() => replaceBetweenMarkers(`${TABLE_START}${TABLE_END}${TABLE_START}${TABLE_END}`, 'x')).toThrow(/more than once/);
  });

  it('finds its markers in the README, so --publish can regenerate the table', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const updated = replaceBetweenMarkers(readme, table);
    expect(updated).toContain(rows[2]);
    expect(updated.slice(0, updated.indexOf(TABLE_START))).toBe(readme.slice(0, readme.indexOf(TABLE_START)));
  });
});
