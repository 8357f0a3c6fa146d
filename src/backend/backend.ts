import type { NetworkConfig } from '../config/network-config.js';
import type { ExternalInterface } from '../iface/external-interface.js';
import type { Ipv4Net } from '../ip/ipv4.js';
import type { Lease, LeaseAttrs, LeaseEvent } from '../subnet/lease.js';
import type { FastPathLoadOptions } from '../datapath/udp-fastpath.js';

/** The `Backend` object of the network config, keys as the operator wrote them (Go's JSON matches them case-insensitively). */
export type BackendOptions = Readonly<Record<string, unknown>>;

/** Settings of the daemon that backends may use; each backend reads the ones that concern it. */
export interface BackendSettings {
  /** Drop received packets whose inner source is not in the sending host's lease (udp). */
  readonly antiSpoofing: boolean;
  /** TSO/GRO between the kernel and the udp datapath (the wire format does not change). */
  readonly offload: boolean;
  /** TUN queues (and UDP sockets) of the udp datapath; 0 lets the backend choose from the CPU count. */
  readonly queues: number;
  /** The udp backend's eBPF fast path: `auto` uses it where the kernel allows, `on` requires it, `off` never loads it. */
  readonly udpFastpath: 'auto' | 'on' | 'off';
  /** Testing aids for loading the fast path (FLANNELD_UDP_FASTPATH_OBJECT, _ATTACH), checked by the CLI at startup. */
  readonly udpFastpathLoad: FastPathLoadOptions;
}

export interface BackendContext<C = unknown> {
  readonly config: NetworkConfig;
  /** The backend's own keys, validated by its definition's parseConfig. */
  readonly backendConfig: C;
  readonly extIface: ExternalInterface;
  readonly settings: BackendSettings;
}

/**
 * One encapsulation (flannel's `backend.Backend`). The daemon asks it for the lease attributes, acquires the
 * lease with them, then starts the network for that lease. If the lease is lost and re-acquired on another
 * subnet, the daemon closes the network and starts a new one.
 */
export interface Backend {
  readonly type: string;
  /** BackendType/BackendData to publish in our lease (PublicIP is filled in by the daemon). */
  leaseAttrs(): Promise<Omit<LeaseAttrs, 'PublicIP'>>;
  startNetwork(lease: Lease): Promise<BackendNetwork>;
}

/** One sample for Prometheus, read from a backend at scrape time. Samples of one name share help and type. */
export interface MetricSample {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One sample; labels may be empty. */
export function sample(type: MetricSample['type'], name: string, help: string, labels: Readonly<Record<string, string>>, value: number): MetricSample {
  return { name, help, type, labels, value };
}

/** A counter's sample, the kind most backend metrics are. */
export function counter(name: string, help: string, labels: Readonly<Record<string, string>>, value: number): MetricSample {
  return sample('counter', name, help, labels, value);
}

export interface BackendNetwork {
  /** The overlay MTU, written to the subnet file as FLANNEL_MTU. */
  readonly mtu: number;
  /** Peer leases as the watch reports them (our own lease is filtered out before this is called). */
  applyLeaseEvent(event: LeaseEvent): Promise<void>;
  /**
   * Every current peer lease at once, in place of one applyLeaseEvent per lease, after the first watch listing and
   * whenever the network is started again: the backend can program them in one pass, and remove the kernel state it
   * left behind for leases that no longer exist. Events that follow go to applyLeaseEvent. Backends whose state goes
   * away with the process (udp) need not implement it: they get one `added` event per current peer instead.
   */
  reconcile?(peers: readonly Lease[]): Promise<void>;
  /** Undefined while the network carries traffic; otherwise why it stopped (a deleted device, a dead socket). */
  failure(): Error | undefined;
  /** What the backend counts (packets, drops, ...), read when Prometheus scrapes. */
  metrics(): readonly MetricSample[];
  /**
   * Stops following leases. Kernel state is left as flannel leaves it on exit, so that a restart adopts it and
   * traffic keeps flowing meanwhile (vxlan, host-gw); the udp backend's TUN goes away with its descriptor.
   * The etcd lease is left alone.
   */
  close(): Promise<void>;
}

/**
 * A backend type as registered with the registry (flannel's `backend.Register`): its name, the validation of its
 * config keys, and how to build it. Adding a backend is one folder under src/backend/ plus one registration.
 */
export interface BackendDefinition<C = unknown> {
  /** `Backend.Type`, lower-case. */
  readonly type: string;
  /** Validates this type's keys of the `Backend` object and applies defaults; throws ConfigError with one line. */
  parseConfig(options: BackendOptions): C;
  create(ctx: BackendContext<C>): Backend;
  /**
   * Removes every device, route and neighbour this backend may have left in the kernel for `network`
   * (`flanneld teardown`). Safe to run twice and when nothing is there. Without a `network` (no subnet file) it
   * removes only what it can find without one, and nothing that depends on the Network.
   */
  teardown?(network?: Ipv4Net): Promise<void>;
}
