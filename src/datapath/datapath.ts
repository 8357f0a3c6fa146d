import type { Ipv4, Ipv4Net } from '../ip/ipv4.js';

/** Where packets for one remote subnet go: the peer's underlay address and UDP port. */
export interface PeerRoute {
  readonly subnet: Ipv4Net;
  readonly publicIp: Ipv4;
  readonly port: number;
}

export interface DatapathCounters {
  readonly txPackets: number; // TUN -> UDP
  readonly txBytes: number;
  readonly rxPackets: number; // UDP -> TUN
  readonly rxBytes: number;
  /** ICMP net-unreachable answers written back for packets to subnets that no lease holds. */
  readonly icmpUnreachableSent: number;
  /** TUN super packets split into wire datagrams, and TUN writes that merged several received datagrams. */
  readonly gsoSplits: number;
  readonly groMerges: number;
  /** TUN reads and socket receives that failed with a transient error (e.g. one reported for an ICMP message). */
  readonly readErrors: number;
  /** Drops by reason, e.g. `no_route`, `ttl_exceeded`, `not_ipv4`, `truncated`, `bad_header_length`, `spoofed_source`,
   *  `unknown_source`, `tun_write_error`, `send_error`, `empty`. Every received datagram ends in `rxPackets` or in
   *  exactly one of these. */
  readonly drops: Readonly<Record<string, number>>;
  /** Datagrams sent and received on each TUN queue / UDP socket pair. */
  readonly queues: readonly { readonly txPackets: number; readonly rxPackets: number }[];
}

/**
 * Why a datapath stopped: the first error one of its packet threads hit that would have repeated on every call
 * (flannel0 deleted, the socket unusable). `message` names the call, the device or address, and the errno.
 */
export interface DatapathFailure {
  /** `read`/`writev` (the TUN), `recvmmsg`/`sendmmsg` (the UDP socket) or `poll`. */
  readonly syscall: string;
  readonly errno: number;
  /** The errno's name, e.g. `EBADFD`. */
  readonly code: string;
  /** The TUN queue (and UDP socket) whose thread failed. */
  readonly queue: number;
  readonly message: string;
}

/**
 * The packet engine over the native addon. TypeScript owns the route table (it is the truth, fed by
 * lease events); the native side holds a copy and does all per-packet work on its own threads.
 */
export interface Datapath {
  setRoute(route: PeerRoute): void;
  deleteRoute(subnet: Ipv4Net): void;
  counters(): DatapathCounters;
  /** undefined while the packet threads run; once one fails they all stop, and this says why. */
  failure(): DatapathFailure | undefined;
  /** Stops the threads and closes the TUN and socket. Idempotent. */
  close(): void;
}
