import { formatIpv4Net, type Ipv4Net } from '../ip/ipv4.js';
import type { Rule } from './iptables.js';
import type { ChainSpec, RuleSet } from './rule-set.js';

const COMMENT = ['-m', 'comment', '--comment', 'flanneld forward'];

/**
 * flannel's forward chain in the filter table (--iptables-forward-rules). dockerd sets FORWARD's policy to DROP,
 * which drops new connections arriving from the overlay for a container; these rules accept overlay traffic.
 *
 * The jump is appended, as flannel does, not inserted first like the masq jump. Checked against a real dockerd
 * (test/netns/dockerd-overlay.test.ts): docker's own FORWARD rules never drop overlay traffic — DOCKER-ISOLATION
 * only drops traffic between two docker bridges — so reaching the end of FORWARD, just before the DROP policy, is
 * enough. In first place, `-s <Network> -j ACCEPT` would accept traffic from docker0 (inside Network) to other
 * docker networks before DOCKER-ISOLATION drops it, and would skip DOCKER-USER, where operators put their own
 * filters. Appending gives one order whichever starts first: dockerd inserts its rules at the top when it starts,
 * and a jump flanneld writes later (a restart, a resync after a flush) lands after them.
 */
export const FORWARD_CHAIN: ChainSpec = {
  table: 'filter',
  chain: 'FLANNEL-FWD',
  jump: { table: 'filter', chain: 'FORWARD', spec: [...COMMENT, '-j', 'FLANNEL-FWD'] },
  jumpAt: 'last',
};

/** Accept everything from and to the overlay Network. */
export function forwardRuleSet(network: Ipv4Net): RuleSet {
  const n = formatIpv4Net(network);
  const rule = (...spec: string[]): Rule => ({ table: FORWARD_CHAIN.table, chain: FORWARD_CHAIN.chain, spec });
  return {
    spec: FORWARD_CHAIN,
    rules: [rule('-s', n, ...COMMENT, '-j', 'ACCEPT'), rule('-d', n, ...COMMENT, '-j', 'ACCEPT')],
  };
}
