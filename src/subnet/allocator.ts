import type { NetworkConfig } from '../config/network-config.js';
import { makeNet, netContains, netsOverlap, type Ipv4Net } from '../ip/ipv4.js';

/** A lease subnet fits the config if it has SubnetLen bits and lies between SubnetMin and SubnetMax. */
export function fitsConfig(config: NetworkConfig, subnet: Ipv4Net): boolean {
  return (
    subnet.prefixLen === config.subnetLen &&
    netContains(config.network, subnet.ip) &&
    subnet.ip >= config.subnetMin &&
    subnet.ip <= config.subnetMax
  );
}

// A /8 split into /30s has 4 million candidates; walking past this many is pointless work per attempt.
const MAX_CANDIDATES_WALKED = 1 << 17;

/**
 * The subnets between SubnetMin and SubnetMax that no existing lease overlaps. flannel samples among the first
 * 100 free ones; we keep every free one (bounded) so that many hosts starting at once collide less often.
 */
export function freeSubnets(config: NetworkConfig, taken: readonly Ipv4Net[]): Ipv4Net[] {
  const step = 2 ** (32 - config.subnetLen);
  const sorted = [...taken].sort((a, b) => a.ip - b.ip);
  const free: Ipv4Net[] = [];
  let walked = 0;
  for (let ip = config.subnetMin; ip <= config.subnetMax && walked < MAX_CANDIDATES_WALKED; ip += step, walked++) {
    const candidate = makeNet(ip, config.subnetLen);
    if (!sorted.some((t) => netsOverlap(t, candidate))) free.push(candidate);
  }
  return free;
}

export function pickRandom<T>(items: readonly T[], random: () => number = Math.random): T | undefined {
  return items.length ? items[Math.floor(random() * items.length)] : undefined;
}
