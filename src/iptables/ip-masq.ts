import { errorMessage } from '../errors.js';
import { formatIpv4Net, type Ipv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import { Iptables, type Rule } from './iptables.js';

export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
const COMMENT = ['-m', 'comment', '--comment', 'flanneld masq'];

/**
 * flannel's masquerade rules (pkg/trafficmngr/iptables masqRules, without kube-proxy's mark rule): overlay
 * traffic keeps its addresses; traffic leaving the overlay takes the host's address.
 */
export function masqRules(network: Ipv4Net, subnet: Ipv4Net, randomFully: boolean): Rule[] {
  const n = formatIpv4Net(network);
  const s = formatIpv4Net(subnet);
  const masq = randomFully ? ['-j', 'MASQUERADE', '--random-fully'] : ['-j', 'MASQUERADE'];
  const rule = (...spec: string[]): Rule => ({ table: 'nat', chain: MASQ_CHAIN, spec });
  return [
    rule('-s', s, '-d', n, ...COMMENT, '-j', 'RETURN'), // this host's containers to the overlay
    rule('-s', n, '-d', s, ...COMMENT, '-j', 'RETURN'), // the overlay to this host's containers
    rule('!', '-s', n, '-d', s, ...COMMENT, '-j', 'RETURN'), // anything else to this host's containers
    rule('-s', n, '!', '-d', '224.0.0.0/4', ...COMMENT, ...masq), // the overlay to the world, multicast aside
    rule('!', '-s', n, '-d', n, ...COMMENT, ...masq), // the world to remote containers (e.g. host processes)
  ];
}

export const JUMP_RULE: Rule = { table: 'nat', chain: 'POSTROUTING', spec: [...COMMENT, '-j', MASQ_CHAIN] };

/**
 * Keeps the masquerade rules in place for the current lease: written atomically, checked every `resyncSeconds`
 * and rewritten if anyone removed one, replaced when the lease moves, removed on stop.
 *
 * The jump from POSTROUTING goes first: other tools' MASQUERADE rules (docker's own, distribution defaults) must
 * not rewrite container-to-container overlay traffic before our RETURN rules see it.
 */
export class IpMasq {
  private rules: Rule[] = [];
  private timer: NodeJS.Timeout | undefined;
  private randomFully: boolean | undefined;
  private applying: Promise<void> = Promise.resolve();

  constructor(
    private readonly resyncSeconds: number,
    private readonly iptables = new Iptables(),
  ) {}

  /** Installs the rules for this lease (replacing those of any earlier one) and starts the resync loop. */
  async apply(network: Ipv4Net, subnet: Ipv4Net): Promise<void> {
    this.randomFully ??= await this.iptables.supportsRandomFully();
    this.rules = masqRules(network, subnet, this.randomFully);
    await this.write();
    log.info({ event: 'ipmasq-applied', network: formatIpv4Net(network), subnet: formatIpv4Net(subnet), randomFully: this.randomFully }, 'ip-masq rules in place');
    if (!this.timer) {
      this.timer = setInterval(() => void this.resync(), this.resyncSeconds * 1000);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.applying.catch(() => undefined);
    await this.iptables.deleteAll(JUMP_RULE);
    await this.iptables.deleteChain('nat', MASQ_CHAIN);
    log.info({ event: 'ipmasq-removed' }, 'ip-masq rules removed');
  }

  private async write(): Promise<void> {
    await this.iptables.replaceChains('nat', [MASQ_CHAIN], this.rules);
    if (!(await this.iptables.exists(JUMP_RULE))) await this.iptables.insertFirst(JUMP_RULE);
  }

  private async resync(): Promise<void> {
    this.applying = (async () => {
      try {
        for (const rule of [JUMP_RULE, ...this.rules]) {
          if (!(await this.iptables.exists(rule))) {
            log.warn({ event: 'ipmasq-rule-missing' }, 'an ip-masq rule went missing; writing the rule set again');
            await this.write();
            return;
          }
        }
      } catch (err) {
        log.error({ event: 'ipmasq-resync-failed' }, `ip-masq resync failed: ${errorMessage(err)}`);
      }
    })();
    await this.applying;
  }
}
