import type { NetworkConfig } from './config/network-config.js';
import type { Lease } from './subnet/lease.js';

/**
 * Something that follows the lease and must be in place before the subnet file says we are ready (iptables rules, the
 * blackhole route). What it puts in place stays when flanneld stops, like the backends' kernel state: traffic keeps
 * flowing across a restart, and `flanneld teardown` removes it.
 */
export interface DaemonExtension {
  leaseReady(lease: Lease, config: NetworkConfig): Promise<void>;
  /** Stops keeping the state in place (periodic checks); leaves the state itself alone. */
  stop(): Promise<void>;
}
