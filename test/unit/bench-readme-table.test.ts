import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderReadmeTable, replaceBetweenMarkers, TABLE_END, TABLE_START } from '../../bench/readme-table.js';
import { report } from '../helpers/bench-report.js';

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
