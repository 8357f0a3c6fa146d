import { constants } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';

/** Why a run stopped early: the signal it got. */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

const controller = new AbortController();

/**
 * Aborted by the first SIGINT, SIGTERM or SIGHUP once an entry point called handleInterrupts(); never in the tests.
 * The test bed's commands (Testbed.exec, Testbed.spawn) are bound to it, waitFor gives up at the first failing check
 * after it, and sleep() ends early: an interrupted run unwinds through its finally blocks, which clean up.
 */
export const interruption: AbortSignal = controller.signal;

/**
 * The one way the demo, the bench and the fault suite handle Ctrl-C and kill: the first signal is announced with
 * `say` and aborts `interruption`; later ones are ignored while cleanup runs. The entry point then exits with
 * exitCode().
 */
export function handleInterrupts(say: (line: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (interruption.aborted) return;
      say(`\n${signal}: stopping and cleaning up`);
      controller.abort(new Interrupted(signal));
    });
  }
}

/** The signal that interrupted the run, if one did. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return interruption.aborted ? (interruption.reason as Interrupted).signal : undefined;
}

/** 128 + the signal's number once interrupted (as a shell reports a death by signal), else `code`. */
export function exitCode(code: number): number {
  const signal = interruptedBy();
  return signal ? 128 + constants.signals[signal] : code;
}

/** Waits `ms`, or rejects with the Interrupted reason as soon as the run is interrupted. */
export async function sleep(ms: number): Promise<void> {
  await delay(ms, undefined, { signal: interruption }).catch((err) => {
    throw interruption.aborted ? interruption.reason : err;
  });
}
