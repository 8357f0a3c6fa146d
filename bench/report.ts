import type { PlatformCosts } from '../src/datapath/native.js';
import { FIGURES, type FigureKey, type Sample } from './figures.js';
import { ratioOfMedians, summarize, type Summary } from './stats.js';

/** Which flanneld ran a path: ours (with its git commit) or the one given with --flannel-bin. */
export interface BinaryInfo {
  readonly product: string;
  readonly version: string;
  readonly path: string;
  readonly commit?: string;
}

export type Figures = Partial<Record<FigureKey, Summary>>;

export interface PathReport {
  readonly name: string;
  readonly label: string;
  readonly mtuNote: string;
  readonly status: 'measured' | 'unavailable';
  /** Why an unavailable path could not be set up or measured, in the words of what refused it. */
  readonly reason?: string;
  readonly mtu?: number;
  readonly target?: string;
  readonly binary?: BinaryInfo;
  readonly figures?: Figures;
  readonly errors?: readonly { readonly round: number; readonly message: string }[];
}

/** path → reference path → figure → ratio of medians. */
export type Ratios = Record<string, Record<string, Partial<Record<FigureKey, number>>>>;

export interface BenchReport {
  readonly date: string;
  readonly wallSeconds: number;
  readonly rounds: { readonly count: number; readonly order: readonly string[]; readonly seconds: readonly number[] };
  readonly machine: { readonly cores: number; readonly kernel: string; readonly clockTicks: number; readonly platform: PlatformCosts };
  readonly method: Record<string, string>;
  readonly paths: readonly PathReport[];
  readonly ratios: Ratios;
}

/** The paths every other one is compared with, when they were measured in the run. */
export const REFERENCE_PATHS = ['bare-lan', 'kernel-vxlan', 'naive-relay', 'flannel-bin-udp'] as const;

/** Median and range of each figure over a path's rounds. */
export function summarizeSamples(samples: readonly Sample[]): Figures {
  const figures: Figures = {};
  for (const { key } of FIGURES) {
    const summary = summarize(samples.map((s) => s[key]));
    if (summary) figures[key] = summary;
  }
  return figures;
}

/** Ratios of medians of every measured path to every measured reference path, figure by figure. */
export function computeRatios(paths: readonly PathReport[]): Ratios {
  const measured = paths.filter((p) => p.status === 'measured' && p.figures);
  const ratios: Ratios = {};
  for (const path of measured) {
    for (const ref of measured.filter((r) => r !== path && (REFERENCE_PATHS as readonly string[]).includes(r.name))) {
      const byFigure: Partial<Record<FigureKey, number>> = {};
      for (const { key } of FIGURES) {
        const r = ratioOfMedians(path.figures![key], ref.figures![key]);
        if (r !== undefined) byFigure[key] = r;
      }
      (ratios[path.name] ??= {})[ref.name] = byFigure;
    }
  }
  return ratios;
}

/** "flannel-ts 0.1.0 (4cf3233)", "flannel v0.20.2 (flanneld-go)": what the README says was measured. */
export function describeBinary(b: BinaryInfo): string {
  const where = b.commit ?? b.path.split('/').pop();
  return `${b.product} ${b.version}${where ? ` (${where})` : ''}`;
}
