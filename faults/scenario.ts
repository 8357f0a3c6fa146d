import { errorMessage } from '../src/errors.js';

/** A figure printed on the scenario's line: a count, a duration in seconds, a rate, or a yes/no. */
export type Figure = number | string | boolean;

/** What one fault scenario measured, and which of its expectations failed (none when it passed). */
export interface ScenarioResult {
  readonly name: string;
  readonly seconds: number;
  readonly figures: Readonly<Record<string, Figure>>;
  readonly problems: readonly string[];
}

/**
 * Collects a scenario's figures and checks. A scenario never throws for a failed expectation: it records it and
 * goes on (and cleans up), so that one line reports everything that went wrong; a thrown error means the scenario
 * could not run at all, and is recorded the same way by run().
 */
export class Findings {
  readonly figures: Record<string, Figure> = {};
  readonly problems: string[] = [];

  set(name: string, value: Figure): void {
    this.figures[name] = typeof value === 'number' && !Number.isInteger(value) ? Number(value.toFixed(2)) : value;
  }

  expect(ok: boolean, problem: string): void {
    if (!ok) this.problems.push(problem);
  }
}

/** Runs one scenario with its setup and cleanup, timing it; an exception becomes a problem, not a crash. */
export async function run(name: string, body: (f: Findings) => Promise<void>): Promise<ScenarioResult> {
  const f = new Findings();
  const started = Date.now();
  try {
    await body(f);
  } catch (err) {
    f.problems.push(`did not complete: ${errorMessage(err).split('\n')[0]}`);
  }
  return { name, seconds: Math.round((Date.now() - started) / 100) / 10, figures: f.figures, problems: f.problems };
}

/** `name  ok  k=v k=v (Ns)` or `name  FAILED  k=v ... (Ns): problem; problem`: one line per scenario. */
export function formatResult(r: ScenarioResult): string {
  const figures = Object.entries(r.figures).map(([k, v]) => `${k}=${v}`).join(' ');
  const verdict = r.problems.length ? 'FAILED' : 'ok';
  return `${r.name.padEnd(18)} ${verdict.padEnd(6)} ${figures} (${r.seconds} s)${r.problems.length ? `: ${r.problems.join('; ')}` : ''}`;
}
