/** Median and range of one figure over the rounds of a run; `samples` keeps every round, null where it failed. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly samples: readonly (number | null)[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median, min and max over the finite samples; undefined when no round produced one. */
export function summarize(samples: readonly (number | null | undefined)[]): Summary | undefined {
  const kept = samples.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null));
  const finite = kept.filter((v): v is number => v !== null);
  if (finite.length === 0) return undefined;
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), samples: kept };
}

/**
 * The ratio of two figures' medians, to three decimals. A ratio of medians, not the median of per-round ratios:
 * rounds are interleaved, not paired, so round i of one path has no special tie to round i of another.
 */
export function ratioOfMedians(a: Summary | undefined, b: Summary | undefined): number | undefined {
  if (!a || !b || b.median === 0) return undefined;
  return Number((a.median / b.median).toFixed(3));
}
