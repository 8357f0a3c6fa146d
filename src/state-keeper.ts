import { errorMessage } from './errors.js';
import { log } from './log.js';

/** What a check found missing: logged as a warning with `fields` before the item is written again. */
export interface Missing {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly message: string;
}

/** One piece of host state a StateKeeper keeps in place (an iptables chain, a route). */
export interface KeptItem {
  /** Names the item in failure reports (the chain, the subnet); unique among the items kept together. */
  readonly key: string;
  /** Puts the item in place, replacing whatever differs. */
  write(): Promise<void>;
  /** Undefined when the item is in place; otherwise what went missing. */
  check(): Promise<Missing | undefined>;
}

export interface StateKeeperOptions {
  /** Seconds between checks (--iptables-resync). */
  readonly resyncSeconds: number;
  /** What is kept, for messages: "iptables rules". */
  readonly what: string;
  /** The log field listing the failing keys: "chains". */
  readonly keysField: string;
  /**
   * Log events: a check found something missing; writing failed; everything is in place again; and, at debug level,
   * a resync ended (with the keys still failing), so a reader can count resyncs instead of waiting out the clock.
   */
  readonly events: { readonly missing: string; readonly failed: string; readonly recovered: string; readonly resynced: string };
}

/**
 * Keeps a desired state in place: apply() writes the items and makes them the whole desired state, and every
 * `resyncSeconds` each is checked and written again if anything went missing. apply() and the checks run one at a
 * time, in order, so a check never acts on items a later apply() replaced (a stale route or rule put back after the
 * lease moved). Stopping ends the checks and leaves the state where it is, so traffic keeps flowing across a restart.
 *
 * Failures are remembered per item and logged when that picture changes, as one line for all items, and once more
 * when everything is back: never once per resync.
 */
export class StateKeeper {
  private items = new Map<string, KeptItem>();
  private readonly failures = new Map<string, string>();
  private reported = '';
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: StateKeeperOptions) {}

  /**
   * Writes `items` now and keeps them from then on in place of what was kept before, even those that could not be
   * written (the next resync tries again). Resolves with the keys that failed and why; the caller decides whether
   * that is fatal, then calls report().
   */
  apply(items: readonly KeptItem[]): Promise<Map<string, Error>> {
    return this.serialized(async () => {
      this.items = new Map(items.map((item) => [item.key, item]));
      for (const key of [...this.failures.keys()]) if (!this.items.has(key)) this.failures.delete(key);
      const failed = new Map<string, Error>();
      for (const item of items) {
        try {
          await item.write();
          this.failures.delete(item.key);
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          failed.set(item.key, error);
          this.failures.set(item.key, error.message);
        }
      }
      this.startTimer();
      return failed;
    });
  }

  /** Logs the failure picture if it changed since last time: one error line, or one line saying all is well again. */
  report(): void {
    const { what, keysField, events, resyncSeconds } = this.opts;
    const byError = new Map<string, string[]>();
    for (const [key, error] of this.failures) byError.set(error, [...(byError.get(error) ?? []), key]);
    const state = [...byError].map(([error, keys]) => `${keys.join(', ')}: ${error}`).join('; ');
    if (state === this.reported) return;
    const wasFailing = this.reported !== '';
    this.reported = state;
    if (state) {
      log.error({ event: events.failed, [keysField]: [...this.failures.keys()], error: state }, `${what} not in place (${state}); retrying every ${resyncSeconds} s`);
    } else if (wasFailing) {
      const keys = [...this.items.keys()];
      log.info({ event: events.recovered, [keysField]: keys }, `${what} in place again: ${keys.join(', ')}`);
    }
  }

  /** Ends the checks and waits for one under way. What is in place stays. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.queue.catch(() => undefined);
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.resync(), this.opts.resyncSeconds * 1000);
    this.timer.unref();
  }

  private resync(): Promise<void> {
    return this.serialized(async () => {
      for (const item of this.items.values()) {
        try {
          // An item that failed last time is written again straight away: the same steps fail the same way while
          // the fault lasts, so the failure reads the same and is not reported again.
          if (this.failures.has(item.key)) {
            await item.write();
          } else {
            const missing = await item.check();
            if (missing) {
              // Someone removed it (an iptables flush, `ip route del`, another tool): say what.
              log.warn({ event: this.opts.events.missing, ...missing.fields }, missing.message);
              await item.write();
            }
          }
          this.failures.delete(item.key);
        } catch (err) {
          this.failures.set(item.key, errorMessage(err));
        }
      }
      this.report();
      const { what, keysField, events } = this.opts;
      log.debug({ event: events.resynced, [keysField]: [...this.failures.keys()] }, `${what} checked`);
    });
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
