import { formatIpv4Net, type Ipv4Net } from '../ip/ipv4.js';
import type { Rule } from './iptables.js';
import type { ChainSpec, RuleSet } from './rule-set.js';

const COMMENT = ['-m', 'comment', '--comment', 'flanneld masq'];

/**
 * flannel's masquerade chain in the nat table. The jump goes first in POSTROUTING: other tools' MASQUERADE rules
 * (docker's own, distribution defaults) must not rewrite container-to-container overlay traffic before our RETURN
 * rules see it.
 */
export const MASQ_CHAIN: ChainSpec = {
  table: 'nat',
  chain: 'FLANNEL-POSTRTG',
  jump: { table: 'nat', chain: 'POSTROUTING', spec: [...COMMENT, '-j', 'FLANNEL-POSTRTG'] },
  jumpAt: 'first',
};

/**
 * flannel's masquerade rules (pkg/trafficmngr/iptables masqRules, without kube-proxy's mark rule): overlay
 * traffic keeps its addresses; traffic leaving the overlay takes the host's. `randomFully` picks source ports
 * at random (flannel's default where iptables supports it; --ip-masq-fully-random-disable turns it off).
 */
export function masqRuleSet(network: Ipv4Net, subnet: Ipv4Net, randomFully: boolean): RuleSet {
  const n = formatIpv4Net(network);
  const s = formatIpv4Net(subnet);
  const masq = randomFully ? ['-j', 'MASQUERADE', '--random-fully'] : ['-j', 'MASQUERADE'];
  const rule = (...spec: string[]): Rule => ({ table: MASQ_CHAIN.table, chain: MASQ_CHAIN.chain, spec });
  return {
    spec: MASQ_CHAIN,
    rules: [
      rule('-s', s, '-d', n, ...COMMENT, '-j', 'RETURN'), // this host's containers to the overlay
      rule('-s', n, '-d', s, ...COMMENT, '-j', 'RETURN'), // the overlay to this host's containers
      rule('!', '-s', n, '-d', s, ...COMMENT, '-j', 'RETURN'), // anything else to this host's containers
      rule('-s', n, '!', '-d', '224.0.0.0/4', ...COMMENT, ...masq), // the overlay to the world, multicast aside
      rule('!', '-s', n, '-d', n, ...COMMENT, ...masq), // the world to remote containers (e.g. host processes)
    ],
  };
}
