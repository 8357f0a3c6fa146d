// The round scheduler of `npm run bench`: every ready path once per round, in registry order, round after round, so
// slow drift of a shared machine reaches every path alike. What one measurement does is injected (measure.ts in a
// run), so the order can be checked without a network.
import { errorMessage } from '../src/errors.js';
import { interruption } from '../testbed/interrupt.js';
import { FIGURES, formatFigure, type Sample } from './figures.js';
import type { BenchPath, ReadyPath } from './paths.js';

export interface PathState {
  readonly path: BenchPath;
  readonly ready?: ReadyPath;
  readonly reason?: string;
  readonly samples: Sample[];
  readonly errors: { round: number; message: string }[];
}

/** One round's figures for one ready path; a failed measurement leaves NaN in its figure and its message in `errors`. */
export type MeasurePath = (path: ReadyPath) => Promise<{ sample: Sample; errors: string[] }>;

export interface RoundsOptions {
  readonly rounds: number;
  /** After each sample, print the path's diagnostics (BENCH_VERBOSE). */
  readonly verbose?: boolean;
  readonly say: (line: string) => void;
}

function sampleLine(name: string, s: Sample): string {
  return `  ${name.padEnd(22)} ${FIGURES.map((f) => `${f.label} ${formatFigure(s[f.key])}${f.unit ? ` ${f.unit}` : ''}`).join(', ')}`;
}

/**
 * Measures every ready path once per round, in the order of `states`, round after round, appending to each path's
 * samples and errors; returns each round's seconds. An unavailable path (no `ready`) is never measured.
 */
export async function runRounds(states: readonly PathState[], measure: MeasurePath, o: RoundsOptions): Promise<number[]> {
  const roundSeconds: number[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const started = Date.now();
    o.say(`round ${round}/${o.rounds}`);
    for (const state of states.filter((s) => s.ready)) {
      interruption.throwIfAborted();
      const { sample, errors } = await measure(state.ready!);
      state.samples.push(sample);
      state.errors.push(...errors.map((m) => ({ round, message: m })));
      o.say(sampleLine(state.path.name, sample));
      for (const e of errors) o.say(`    failed: ${e}`);
      if (o.verbose && state.ready!.diagnostics) o.say(await state.ready!.diagnostics().catch(errorMessage));
    }
    roundSeconds.push(Math.round((Date.now() - started) / 100) / 10);
    o.say(`round ${round} took ${roundSeconds.at(-1)} s`);
  }
  return roundSeconds;
}
