// The README's performance table, generated from a run's JSON so the published numbers are exactly the measured ones.
import { FIGURES, formatFigure, type FigureKey } from './figures.js';
import { roundsText } from './method.js';
import { describeBinary, REFERENCE_PATHS, type BenchReport, type PathReport } from './report.js';
import { median, type Summary } from './stats.js';

export const TABLE_START = '<!-- bench-table:start -->';
export const TABLE_END = '<!-- bench-table:end -->';

const cell = (text: string) => text.replace(/\|/g, '\\|');

function summaryCell(s: Summary | undefined): string {
  return s ? `${formatFigure(s.median)} (${formatFigure(s.min)}–${formatFigure(s.max)})` : '–';
}

function figureRow(p: PathReport): string {
  const binary = p.binary ? describeBinary(p.binary) : '–';
  if (p.status === 'unavailable') {
    return `| ${cell(p.label)} | ${cell(binary)} | – | unavailable: ${cell(p.reason ?? 'unknown')} |${' |'.repeat(FIGURES.length - 1)}`;
  }
  return `| ${cell(p.label)} | ${cell(binary)} | ${p.mtu ?? '–'} | ${FIGURES.map((f) => summaryCell(p.figures?.[f.key])).join(' | ')} |`;
}

/** Ratio columns: every figure against kernel VXLAN, then 1-stream TCP against each other reference that was measured. */
function ratioColumns(report: BenchReport): { ref: PathReport; key: FigureKey; title: string }[] {
  const measured = (name: string) => report.paths.find((p) => p.name === name && p.status === 'measured');
  const columns: { ref: PathReport; key: FigureKey; title: string }[] = [];
  const vxlan = measured('kernel-vxlan');
  if (vxlan) for (const f of FIGURES) columns.push({ ref: vxlan, key: f.key, title: `${f.label} vs ${vxlan.label}` });
  for (const name of REFERENCE_PATHS.filter((n) => n !== 'kernel-vxlan')) {
    const ref = measured(name);
    if (ref) columns.push({ ref, key: 'tcp1Gbps', title: `TCP 1 stream vs ${ref.label}` });
  }
  return columns;
}

/** The markdown that goes between the README's markers: what was run, the figures, and the ratios of medians. */
export function renderReadmeTable(report: BenchReport): string {
  const lines: string[] = [];
  const { count, seconds } = report.rounds;
  lines.push(
    `Run of ${report.date.slice(0, 16).replace('T', ' ')} UTC: ${roundsText(count)} (${Math.round(median(seconds))} s each), ` +
      `${report.machine.cores} cores, kernel ${report.machine.kernel}. Each cell is the median over the rounds, with the range in brackets.`,
  );
  lines.push('');
  lines.push(`| path | flanneld | MTU | ${FIGURES.map((f) => (f.unit ? `${f.label} (${f.unit})` : f.label)).join(' | ')} |`);
  lines.push(`|---|---|---|${FIGURES.map(() => '---|').join('')}`);
  for (const p of report.paths) lines.push(figureRow(p));

  const columns = ratioColumns(report);
  const rows = report.paths.filter((p) => p.status === 'measured');
  if (columns.length) {
    lines.push('');
    lines.push('Ratios of medians (for RTT and CPU s/GB, lower is better):');
    lines.push('');
    lines.push(`| path | ${columns.map((c) => c.title).join(' | ')} |`);
    lines.push(`|---|${columns.map(() => '---|').join('')}`);
    for (const p of rows) {
      const values = columns.map((c) => {
        const r = c.ref === p ? undefined : report.ratios[p.name]?.[c.ref.name]?.[c.key];
        return r === undefined ? '–' : `${formatFigure(r)}×`;
      });
      lines.push(`| ${cell(p.label)} | ${values.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

/** Replaces what lies between the markers (kept) with `content`; text outside them is left byte for byte. */
export function replaceBetweenMarkers(text: string, content: string): string {
  const start = text.indexOf(TABLE_START);
  const end = text.indexOf(TABLE_END);
  if (start < 0 || end < 0 || end < start) throw new Error(`README.md needs ${TABLE_START} followed by ${TABLE_END}`);
  if (text.indexOf(TABLE_START, start + 1) >= 0 || text.indexOf(TABLE_END, end + 1) >= 0) throw new Error('README.md has the bench-table markers more than once');
  return `${text.slice(0, start + TABLE_START.length)}\n${content}\n${text.slice(end)}`;
}
