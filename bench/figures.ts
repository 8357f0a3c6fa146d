/** The figures measured on every path in every round, in table and chart order. */
export const FIGURES = [
  { key: 'tcp1Gbps', label: 'TCP 1 stream', unit: 'Gbit/s' },
  { key: 'tcp4Gbps', label: 'TCP 4 streams', unit: 'Gbit/s' },
  { key: 'udpSmallKpps', label: 'UDP 64 B', unit: 'kpps' },
  { key: 'rttMs', label: 'RTT', unit: 'ms' },
  { key: 'cpuSecondsPerGB', label: 'CPU s/GB', unit: '' },
] as const;

export type FigureKey = (typeof FIGURES)[number]['key'];

/** One round's measurement of one path; NaN where that measurement failed. */
export type Sample = Record<FigureKey, number>;

/** Three significant digits or so, the precision a shared 2-core VM supports: 17.6, 9.44, 0.212, 455. */
export function formatFigure(value: number): string {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  return value.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3);
}
