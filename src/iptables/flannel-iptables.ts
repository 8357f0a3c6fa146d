import type { NetworkConfig } from '../config/network-config.js';
import type { DaemonExtension } from '../daemon-extension.js';
import { errorMessage, IptablesNotFoundError } from '../errors.js';
import { formatIpv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import type { Lease } from '../subnet/lease.js';
import { FORWARD_CHAIN, forwardRuleSet } from './forward.js';
import { MASQ_CHAIN, masqRuleSet } from './ip-masq.js';
import { Iptables, supportsRandomFully } from './iptables.js';
import { StateKeeper } from '../state-keeper.js';
import { keptRuleSet, removeRuleSet, type ChainSpec, type RuleSet } from './rule-set.js';

/** The flags that decide which of flannel's rule sets a host keeps. */
export interface IptablesOptions {
  /** --ip-masq: FLANNEL-POSTRTG in nat. */
  readonly ipMasq: boolean;
  /** --ip-masq-fully-random-disable: masquerade without --random-fully. */
  readonly ipMasqFullyRandomDisable: boolean;
  /** --iptables-forward-rules: FLANNEL-FWD in filter. */
  readonly iptablesForwardRules: boolean;
  /** --iptables-resync: seconds between checks. */
  readonly iptablesResync: number;
}

/** Every chain flanneld may create, for teardown. */
const ALL_CHAINS: readonly ChainSpec[] = [MASQ_CHAIN, FORWARD_CHAIN];

/**
 * flanneld's iptables rules as a daemon extension: the enabled rule sets follow the lease and the Network, are
 * kept in place while flanneld runs, and stay when it stops (see StateKeeper). A rule set whose flag is off is
 * removed at startup, so turning a flag off and restarting takes effect.
 */
export class FlannelIptables implements DaemonExtension {
  private readonly keeper: StateKeeper;
  private randomFully = false;
  private started = false;

  private constructor(
    private readonly options: IptablesOptions,
    private readonly iptables: Iptables,
  ) {
    this.keeper = new StateKeeper({
      resyncSeconds: options.iptablesResync,
      what: 'iptables rules',
      keysField: 'chains',
      events: { missing: 'iptables-rule-missing', failed: 'iptables-failed', recovered: 'iptables-recovered', resynced: 'iptables-resynced' },
    });
  }

  /**
   * Checks what can be checked before anything touches etcd: with --ip-masq, a missing iptables is a startup
   * error (masquerading is what the subnet file promises docker). Forward rules alone only log it and retry:
   * a host without iptables has no FORWARD DROP policy to open either.
   */
  static async create(options: IptablesOptions, iptables = new Iptables()): Promise<FlannelIptables> {
    const extension = new FlannelIptables(options, iptables);
    if (options.ipMasq) {
      let version: string;
      try {
        version = await iptables.checkAvailable();
      } catch (err) {
        if (err instanceof IptablesNotFoundError) throw new IptablesNotFoundError(err.binary, '--ip-masq');
        throw err;
      }
      extension.randomFully = !options.ipMasqFullyRandomDisable && supportsRandomFully(version);
    }
    return extension;
  }

  async leaseReady(lease: Lease, config: NetworkConfig): Promise<void> {
    if (!this.started) {
      this.started = true;
      await this.removeDisabled();
    }
    const sets: RuleSet[] = [];
    if (this.options.ipMasq) sets.push(masqRuleSet(config.network, lease.subnet, this.randomFully));
    if (this.options.iptablesForwardRules) sets.push(forwardRuleSet(config.network));
    if (sets.length === 0) return;
    const failed = await this.keeper.apply(sets.map((set) => keptRuleSet(this.iptables, set)));
    // Like flannel: no subnet file promising docker that flanneld masquerades (FLANNEL_IPMASQ=true) without the rules.
    const masqFailure = failed.get(MASQ_CHAIN.chain);
    if (masqFailure) throw masqFailure;
    this.keeper.report();
    const written = sets.filter((s) => !failed.has(s.spec.chain)).map((s) => s.spec.chain);
    if (written.length > 0) {
      log.info({ event: 'iptables-applied', chains: written, network: formatIpv4Net(config.network), subnet: formatIpv4Net(lease.subnet), randomFully: this.options.ipMasq ? this.randomFully : undefined },
        `iptables rules in place: ${written.join(', ')}`);
    }
  }

  /** Stops the checks; the rules stay for the next start. */
  stop(): Promise<void> {
    return this.keeper.stop();
  }

  private async removeDisabled(): Promise<void> {
    const disabled = [...(this.options.ipMasq ? [] : [MASQ_CHAIN]), ...(this.options.iptablesForwardRules ? [] : [FORWARD_CHAIN])];
    for (const spec of disabled) {
      try {
        if (await removeRuleSet(this.iptables, spec)) {
          log.info({ event: 'iptables-removed', chain: spec.chain }, `removed ${spec.chain} left by an earlier run: its flag is off now`);
        }
      } catch (err) {
        // Without iptables there is nothing of ours to remove.
        if (!(err instanceof IptablesNotFoundError)) log.warn({ event: 'iptables-remove-failed', chain: spec.chain }, `cannot remove ${spec.chain}: ${errorMessage(err)}`);
      }
    }
  }
}

/**
 * Removes every chain flanneld creates (FLANNEL-POSTRTG, FLANNEL-FWD) and the jumps to them, whatever the Network
 * or lease they were written for. For `flanneld teardown`; safe to run twice, and on a host without iptables
 * (where flanneld cannot have written any). Resolves with the chains that were there; any other failure rejects
 * with a KernelError naming the chain and quoting iptables.
 */
export async function removeFlannelIptables(iptables = new Iptables()): Promise<string[]> {
  const removed: string[] = [];
  try {
    for (const spec of ALL_CHAINS) if (await removeRuleSet(iptables, spec)) removed.push(spec.chain);
  } catch (err) {
    if (!(err instanceof IptablesNotFoundError)) throw err;
  }
  return removed;
}
