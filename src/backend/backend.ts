import type { NetworkConfig } from '../config/network-config.js';
import type { DatapathCounters } from '../datapath/datapath.js';
import type { Ipv4 } from '../ip/ipv4.js';
import type { Lease, LeaseAttrs, LeaseEvent } from '../subnet/lease.js';

/** The host interface that carries inter-host (underlay) traffic. */
export interface ExternalInterface {
  readonly name: string;
  readonly index: number;
  /** The interface's own IPv4 address. */
  readonly address: Ipv4;
  /** What peers send to (`--public-ip`, else `address`); becomes the lease's PublicIP. */
  readonly publicIp: Ipv4;
  readonly mtu: number;
}

export interface BackendContext {
  readonly config: NetworkConfig;
  readonly extIface: ExternalInterface;
  /** Drop received packets whose inner source is not in the sending host's lease. */
  readonly antiSpoofing: boolean;
  /** Let the datapath use TSO/GRO between the kernel and itself (the wire format does not change). */
  readonly offload: boolean;
  /** TUN queues (and UDP sockets) of the datapath; 0 lets the backend choose from the CPU count. */
  readonly queues: number;
}

/**
 * One encapsulation (flannel's `backend.Backend`). The daemon asks it for the lease attributes, acquires the
 * lease with them, then starts the network for that lease. If the lease is lost and re-acquired on another
 * subnet, the daemon closes the network and starts a new one.
 */
export interface Backend {
  readonly type: string;
  /** Bytes each packet grows by on the wire: FLANNEL_MTU = interface MTU − overhead. */
  readonly mtuOverhead: number;
  /** BackendType/BackendData to publish in our lease (PublicIP is filled in by the daemon). */
  leaseAttrs(): Promise<Omit<LeaseAttrs, 'PublicIP'>>;
  startNetwork(lease: Lease): Promise<BackendNetwork>;
}

export interface BackendNetwork {
  readonly mtu: number;
  /** Peer leases as the watch reports them (our own lease is filtered out before this is called). */
  applyLeaseEvent(event: LeaseEvent): void;
  counters(): DatapathCounters | undefined;
  /** Removes what startNetwork put in the kernel. The etcd lease is left alone. */
  close(): Promise<void>;
}

export type BackendFactory = (ctx: BackendContext) => Backend;
