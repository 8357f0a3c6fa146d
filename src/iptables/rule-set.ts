import type { KeptItem } from '../state-keeper.js';
import { describeRule, type Iptables, type Rule } from './iptables.js';

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
async function writeRuleSet(iptables: Iptables, set: RuleSet): Promise<void> {
  const { spec } = set;
  await iptables.replaceChains(spec.table, [spec.chain], set.rules);
  if (await iptables.exists(spec.jump)) return;
  if (spec.jumpAt === 'first') await iptables.insertFirst(spec.jump);
  else await iptables.append(spec.jump);
}

/** Removes every jump to the chain and the chain itself. Safe to repeat; true if there was anything to remove. */
export async function removeRuleSet(iptables: Iptables, spec: ChainSpec): Promise<boolean> {
  const jumps = await iptables.deleteAll(spec.jump);
  return (await iptables.deleteChain(spec.table, spec.chain)) || jumps > 0;
}

/** The first rule of the set (jump included) that is not in place, if any. */
async function firstMissing(iptables: Iptables, set: RuleSet): Promise<Rule | undefined> {
  for (const rule of [set.spec.jump, ...set.rules]) if (!(await iptables.exists(rule))) return rule;
  return undefined;
}

/**
 * A rule set as a StateKeeper keeps it: written whole, checked rule by rule (`iptables -C`), and written whole again
 * when any rule went missing.
 */
export function keptRuleSet(iptables: Iptables, set: RuleSet): KeptItem {
  const chain = set.spec.chain;
  return {
    key: chain,
    write: () => writeRuleSet(iptables, set),
    check: async () => {
      const missing = await firstMissing(iptables, set);
      if (!missing) return undefined;
      const rule = describeRule(missing);
      return { fields: { chain, rule }, message: `iptables rule went missing: ${rule}; writing ${chain} again` };
    },
  };
}
