import type { HealthVerdict } from './http-server.js';

// One attempt of an etcd loop (a renewal, a list and watch) is a few calls of at most 5 s each (etcd-registry's call
// deadline): a loop that is this late past its due turn is stuck, not slow.
export const ETCD_LOOP_GRACE_MS = 30_000;

/**
 * When a long-running loop last turned and by when it must turn again: what liveness reads to tell a loop that is
 * stuck (an await that never settles) from one that waits on purpose (a lease due in hours, a watch with no events).
 */
export class LoopPulse {
  private lastTurn: number;
  private dueAt: number | undefined;

  /** `graceMs`: how late past its due time the loop may be before it counts as stuck. */
  constructor(
    readonly name: string,
    private readonly graceMs: number,
    now = Date.now(),
  ) {
    this.lastTurn = now;
  }

  /** The loop turned now and will turn again within `inMs`. */
  beat(inMs: number, now = Date.now()): void {
    this.lastTurn = now;
    this.dueAt = now + Math.max(0, inMs);
  }

  /** The loop turned now and waits for something outside it (a watch event, a new lease): it has no deadline. */
  rest(now = Date.now()): void {
    this.lastTurn = now;
    this.dueAt = undefined;
  }

  /** Past its due time by more than the grace: why, else undefined. */
  stale(now = Date.now()): string | undefined {
    if (this.dueAt === undefined || now <= this.dueAt + this.graceMs) return undefined;
    return `the ${this.name} loop has not turned for ${Math.round((now - this.lastTurn) / 1000)} s`;
  }
}

/** Liveness over several loops: not ok, naming the first stuck one, as soon as one is. */
export function livenessOf(pulses: readonly (LoopPulse | undefined)[], now = Date.now()): HealthVerdict {
  for (const pulse of pulses) {
    const reason = pulse?.stale(now);
    if (reason) return { ok: false, reason };
  }
  return { ok: true };
}
