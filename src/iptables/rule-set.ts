import { errorMessage } from '../errors.js';
import { log } from '../log.js';
import { describeRule, Iptables, type Rule } from './iptables.js';

/**
 * A chain of flanneld's own and the rule in a built-in chain that jumps to it. The jump names no address, so it
 * stays valid when the chain's rules change with the lease or the Network, and removing the chain needs nothing
 * but this.
 */
export interface ChainSpec {
  readonly table: string;
  readonly chain: string;
  readonly jump: Rule;
  /** Where a missing jump goes in its built-in chain; each spec says why. */
  readonly jumpAt: 'first' | 'last';
}

/** A chain's complete intended content. */
export interface RuleSet {
  readonly spec: ChainSpec;
  readonly rules: readonly Rule[];
}

/**
 * Writes a rule set: the chain's content in one atomic iptables-restore (so whatever it held before, such as the
 * rules of an earlier lease or Network, is gone in the same step), then the jump unless one is there already.
 */
export async function writeRuleSet(iptables: Iptables, set: RuleSet): Promise<void> {
  const { spec } = set;
  await iptables.replaceChains(spec.table, [spec.chain], set.rules);
  if (await iptables.exists(spec.jump)) return;
  if (spec.jumpAt === 'first') await iptables.insertFirst(spec.jump);
  else await iptables.append(spec.jump);
}

/** Removes every jump to the chain and the chain itself. Safe to repeat; true if there was anything to remove. */
export async function removeRuleSet(iptables: Iptables, spec: ChainSpec): Promise<boolean> {
  const jumped = await iptables.exists(spec.jump);
  await iptables.deleteAll(spec.jump);
  return (await iptables.deleteChain(spec.table, spec.chain)) || jumped;
}

/** The first rule of the set (jump included) that is not in place, if any. */
async function firstMissing(iptables: Iptables, set: RuleSet): Promise<Rule | undefined> {
  for (const rule of [set.spec.jump, ...set.rules]) if (!(await iptables.exists(rule))) return rule;
  return undefined;
}

/**
 * Keeps rule sets in place: each is written when applied, checked rule by rule (`iptables -C`) every
 * `resyncSeconds`, and written again if anything went missing. Applying a set for a chain replaces the one
 * before. Stopping ends the checks and leaves the rules where they are, so traffic keeps flowing across a restart.
 *
 * Failures (iptables missing, iptables-restore refusing a rule) are remembered per chain and logged when that
 * picture changes, as one line for all chains, and once more when everything is back: never once per resync.
 */
export class RuleSetKeeper {
  private readonly sets = new Map<string, RuleSet>();
  private readonly failures = new Map<string, string>();
  private reported = '';
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly resyncSeconds: number,
    private readonly iptables = new Iptables(),
  ) {}

  /**
   * Writes the sets now and keeps them from then on, even those that could not be written (the next resync tries
   * again). Resolves with the chains that failed and why; the caller decides whether that is fatal, then calls
   * report().
   */
  apply(sets: readonly RuleSet[]): Promise<Map<string, Error>> {
    return this.serialized(async () => {
      const failed = new Map<string, Error>();
      for (const set of sets) {
        this.sets.set(set.spec.chain, set);
        try {
          await writeRuleSet(this.iptables, set);
          this.failures.delete(set.spec.chain);
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          failed.set(set.spec.chain, error);
          this.failures.set(set.spec.chain, error.message);
        }
      }
      this.startTimer();
      return failed;
    });
  }

  /** Logs the failure picture if it changed since last time: one error line, or one line saying all is well again. */
  report(): void {
    const byError = new Map<string, string[]>();
    for (const [chain, error] of this.failures) byError.set(error, [...(byError.get(error) ?? []), chain]);
    const state = [...byError].map(([error, chains]) => `${chains.join(', ')}: ${error}`).join('; ');
    if (state === this.reported) return;
    const wasFailing = this.reported !== '';
    this.reported = state;
    if (state) {
      log.error({ event: 'iptables-failed', chains: [...this.failures.keys()], error: state },
        `iptables rules not in place (${state}); retrying every ${this.resyncSeconds} s`);
    } else if (wasFailing) {
      log.info({ event: 'iptables-recovered', chains: [...this.sets.keys()] }, `iptables rules in place again: ${[...this.sets.keys()].join(', ')}`);
    }
  }

  /** Ends the checks. The rules stay: connections started while flanneld restarts are still forwarded and masqueraded. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.queue.catch(() => undefined);
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.resync(), this.resyncSeconds * 1000);
    this.timer.unref();
  }

  private resync(): Promise<void> {
    return this.serialized(async () => {
      for (const set of this.sets.values()) {
        const chain = set.spec.chain;
        try {
          // A set that failed last time is written again straight away: the same steps fail the same way while
          // the fault lasts, so the failure reads the same and is not reported again.
          if (this.failures.has(chain)) {
            await writeRuleSet(this.iptables, set);
          } else {
            const missing = await firstMissing(this.iptables, set);
            if (missing) {
              // Someone removed a rule (an iptables flush, another tool): say which.
              log.warn({ event: 'iptables-rule-missing', chain, rule: describeRule(missing) }, `iptables rule went missing: ${describeRule(missing)}; writing ${chain} again`);
              await writeRuleSet(this.iptables, set);
            }
          }
          this.failures.delete(chain);
        } catch (err) {
          this.failures.set(chain, errorMessage(err));
        }
      }
      this.report();
    });
  }

  /** apply() and the resync never interleave their iptables calls. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
