import type { PathResult } from './measure.js';

const COLORS = ['#8d99ae', '#2b7a78', '#e07a5f', '#3d5a80'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** Ratio of a path's value to a reference path's, as a percentage label ("61% of bare-lan"). */
function ratioLabel(results: Record<string, PathResult>, name: string, ref: string, value: (r: PathResult) => number): string {
  if (!results[ref] || name === ref || !value(results[ref])) return '';
  return `${Math.round((100 * value(results[name])) / value(results[ref]))}% of ${ref}`;
}

/**
 * A self-contained SVG: grouped bars of TCP throughput (1 and 4 streams) and ping RTT for every path, each group
 * labelled with its ratio to bare LAN and to kernel VXLAN (1-stream TCP; RTT), the comparisons issue 5 asks for.
 */
export function renderChart(title: string, results: Record<string, PathResult>, footnote = ''): string {
  const names = Object.keys(results);
  const width = 900;
  const panelHeight = 220;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${2 * panelHeight + 130}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="20" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  const panel = (top: number, label: string, series: { key: string; value: (r: PathResult) => number }[], unit: string) => {
    const max = Math.max(...names.flatMap((n) => series.map((s) => s.value(results[n]) || 0)), 1e-9);
    const left = 60;
    const plotWidth = width - left - 20;
    const groupWidth = plotWidth / names.length;
    const barWidth = (groupWidth * 0.7) / series.length;
    out.push(`<text x="20" y="${top - 8}" font-weight="bold">${esc(label)}</text>`);
    out.push(`<line x1="${left}" y1="${top + panelHeight - 40}" x2="${width - 20}" y2="${top + panelHeight - 40}" stroke="#333"/>`);
    names.forEach((name, gi) => {
      series.forEach((s, si) => {
        const v = s.value(results[name]) || 0;
        const h = ((panelHeight - 60) * v) / max;
        const x = left + gi * groupWidth + groupWidth * 0.15 + si * barWidth;
        const y = top + panelHeight - 40 - h;
        out.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[si + (series.length === 1 ? 3 : 0)]}"/>`);
        out.push(`<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="10">${v.toFixed(v < 10 ? 2 : 1)}</text>`);
      });
      const cx = (left + gi * groupWidth + groupWidth / 2).toFixed(1);
      out.push(`<text x="${cx}" y="${top + panelHeight - 24}" text-anchor="middle">${esc(name)}</text>`);
      const ratios = ['bare-lan', 'kernel-vxlan'].map((ref) => ratioLabel(results, name, ref, series[0].value)).filter(Boolean);
      ratios.forEach((r, ri) => out.push(`<text x="${cx}" y="${top + panelHeight - 10 + ri * 12}" text-anchor="middle" font-size="10" fill="#555">${esc(r)}</text>`));
    });
    series.forEach((s, si) => {
      out.push(`<rect x="${width - 200}" y="${top + si * 16}" width="10" height="10" fill="${COLORS[si + (series.length === 1 ? 3 : 0)]}"/>`);
      out.push(`<text x="${width - 185}" y="${top + 9 + si * 16}">${esc(s.key)} (${esc(unit)})</text>`);
    });
  };
  panel(60, 'TCP throughput (iperf3), Gbit/s', [
    { key: '1 stream', value: (r) => r.tcp1Gbps },
    { key: '4 streams', value: (r) => r.tcp4Gbps },
  ], 'Gbit/s');
  panel(60 + panelHeight + 50, 'Round-trip time (ping), ms — lower is better', [{ key: 'average RTT', value: (r) => r.rttMs }], 'ms');
  if (footnote) out.push(`<text x="20" y="${2 * panelHeight + 120}" font-size="11" fill="#555">${esc(footnote)}</text>`);
  out.push('</svg>');
  return out.join('\n');
}
