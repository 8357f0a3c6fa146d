import { formatFigure, type FigureKey } from './figures.js';
import { roundsText } from './method.js';
import type { BenchReport, PathReport } from './report.js';
import type { Summary } from './stats.js';

const COLORS = ['#2b7a78', '#e07a5f', '#3d5a80'];
const CHART_REFERENCES = ['bare-lan', 'kernel-vxlan'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** "0.61× kernel VXLAN": the path's median over the reference's, the labels under each group. */
function ratioLabels(report: BenchReport, path: PathReport, key: FigureKey): string[] {
  return CHART_REFERENCES.flatMap((ref) => {
    const r = report.ratios[path.name]?.[ref]?.[key];
    const label = report.paths.find((p) => p.name === ref)?.label;
    return r === undefined || !label ? [] : [`${formatFigure(r)}× ${label}`];
  });
}

/** A label split into lines of at most ~16 characters at spaces, so long path names fit under their group. */
function wrap(text: string, width = 16): string[] {
  const lines: string[] = [];
  for (const word of text.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

/**
 * A self-contained SVG with one group per measured path: bars of median TCP throughput (1 and 4 streams) and median
 * ping RTT, each with a whisker from the lowest to the highest round, and each group labelled with its ratio of
 * medians to bare LAN and to kernel VXLAN. Unavailable paths are listed under the chart with their reason.
 */
export function renderChart(report: BenchReport, title: string, footnotes: readonly string[] = []): string {
  const paths = report.paths.filter((p) => p.status === 'measured' && p.figures);
  const unavailable = report.paths.filter((p) => p.status === 'unavailable');
  const notes = [
    `bars: median of ${roundsText(report.rounds.count)}; whiskers: lowest to highest round`,
    ...footnotes,
    ...unavailable.map((p) => `${p.label}: unavailable: ${p.reason ?? 'unknown'}`.slice(0, 160)),
  ];
  const width = Math.max(900, 80 + 125 * paths.length);
  const panelHeight = 250;
  const height = 2 * panelHeight + 100 + 16 * notes.length;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="20" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  const panel = (top: number, label: string, series: { name: string; key: FigureKey; color: string }[]) => {
    const summaries = (p: PathReport) => series.map((s) => p.figures?.[s.key]);
    const max = Math.max(...paths.flatMap((p) => summaries(p).map((s) => s?.max ?? 0)), 1e-9);
    const left = 60;
    const base = top + panelHeight - 70;
    const scale = (v: number) => ((panelHeight - 90) * v) / max;
    const groupWidth = (width - left - 20) / Math.max(paths.length, 1);
    const barWidth = (groupWidth * 0.6) / series.length;
    out.push(`<text x="20" y="${top - 8}" font-weight="bold">${esc(label)}</text>`);
    out.push(`<line x1="${left}" y1="${base}" x2="${width - 20}" y2="${base}" stroke="#333"/>`);
    paths.forEach((path, gi) => {
      summaries(path).forEach((s: Summary | undefined, si) => {
        if (!s) return;
        const x = left + gi * groupWidth + groupWidth * 0.2 + si * barWidth;
        const cx = x + barWidth / 2 - 1;
        out.push(`<rect x="${x.toFixed(1)}" y="${(base - scale(s.median)).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${scale(s.median).toFixed(1)}" fill="${series[si].color}"/>`);
        const [yMin, yMax] = [base - scale(s.min), base - scale(s.max)].map((y) => y.toFixed(1));
        out.push(`<path d="M${cx.toFixed(1)} ${yMin}V${yMax}M${(cx - 3).toFixed(1)} ${yMin}h6M${(cx - 3).toFixed(1)} ${yMax}h6" stroke="#222" fill="none"/>`);
        out.push(`<text x="${cx.toFixed(1)}" y="${(base - scale(s.max) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${formatFigure(s.median)}</text>`);
      });
      const cx = (left + gi * groupWidth + groupWidth / 2).toFixed(1);
      const lines = [...wrap(path.label).map((t) => ({ t, style: '' })), ...ratioLabels(report, path, series[0].key).map((t) => ({ t, style: ' font-size="10" fill="#555"' }))];
      lines.forEach((l, li) => out.push(`<text x="${cx}" y="${base + 14 + li * 12}" text-anchor="middle"${l.style}>${esc(l.t)}</text>`));
    });
    // The legend sits on the panel's title line, where no bar can reach it.
    series.forEach((s, si) => {
      const x = width - 20 - 110 * (series.length - si);
      out.push(`<rect x="${x}" y="${top - 18}" width="10" height="10" fill="${s.color}"/>`);
      out.push(`<text x="${x + 15}" y="${top - 8}">${esc(s.name)}</text>`);
    });
  };
  panel(60, 'TCP throughput (iperf3), Gbit/s', [
    { name: '1 stream', key: 'tcp1Gbps', color: COLORS[0] },
    { name: '4 streams', key: 'tcp4Gbps', color: COLORS[1] },
  ]);
  panel(60 + panelHeight + 30, 'Round-trip time (ping), ms: lower is better', [{ name: 'average RTT', key: 'rttMs', color: COLORS[2] }]);
  notes.forEach((n, i) => out.push(`<text x="20" y="${2 * panelHeight + 110 + i * 16}" font-size="11" fill="#555">${esc(n)}</text>`));
  out.push('</svg>');
  return out.join('\n');
}
