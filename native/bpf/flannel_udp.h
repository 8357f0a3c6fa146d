// Shared between the fast path's BPF programs (flannel_udp.bpf.c) and their loader (native/fastpath.cc): the map
// layouts and counter indexes. Plain C with fixed-width kernel types so both compilers agree on every offset.
#pragma once

#include <linux/types.h>

// Runtime settings, one entry in the `config` array map; written by the loader, read by both programs.
struct fp_config {
  __be32 local_ip;     // our address on the external interface: source of what we send, destination of what we take
  __u32 ext_ifindex;   // the external interface, where encapsulated datagrams leave
  __u32 tun_ifindex;   // flannel0; 0 means "not started": the ingress program then passes everything up the stack
  __be16 port;         // our UDP port (8285 or Backend.Port), source and destination of every datagram
  __u8 anti_spoofing;  // drop received packets whose inner source is not in the sending host's lease
  __u8 pad;
};

// Key of the `routes` LPM trie: one peer lease.
struct fp_route_key {
  __u32 prefixlen;
  __be32 subnet;
};

// The peer a lease belongs to.
struct fp_peer {
  __be32 ip;
  __be16 port;
  __u8 flags;  // FP_PEER_*
  __u8 pad;
};

// The peer decapsulates in its own kernel (it runs this fast path), so it takes what the kernel hands us as is:
// TCP super packets and partial checksums that a link without a wire (veth) carries unfinished. Datagrams to any
// other peer (flannel, or flannel-ts without the fast path) are left to the engine, which finishes both.
#define FP_PEER_FASTPATH 1

// Indexes into the per-CPU `counters` array. Packets count wire datagrams (a super packet counts its segments);
// bytes count inner IPv4 bytes, as the engine's counters do.
enum fp_counter {
  FP_TX_PACKETS = 0,
  FP_TX_BYTES,
  FP_RX_PACKETS,
  FP_RX_BYTES,
  FP_TX_SUPER,  // super packets sent whole (segmented by the NIC, or taken whole by a fast-path peer)
  FP_RX_SUPER,  // super packets received whole
  // Dropped in BPF, by the engine's reason names.
  FP_DROP_TTL_EXCEEDED,
  FP_DROP_SPOOFED_SOURCE,
  FP_DROP_UNKNOWN_SOURCE,
  FP_DROP_ENCAP_FAILED,  // a helper failed after the packet was already rewritten
  // Handed to the engine (the slow path) instead, by reason.
  FP_PASS_NO_ROUTE,       // no lease holds the destination: the engine answers ICMP net unreachable
  FP_PASS_PLAIN_PEER,     // the peer does not run the fast path
  FP_PASS_UNUSUAL,        // IP options, fragments, a length that does not add up, not IPv4: the engine decides
  FP_PASS_TOO_BIG,        // would not fit one IPv4 datagram once encapsulated
  FP_PASS_HELPER_FAILED,  // the kernel refused to grow or shrink this skb
  FP_COUNTER_COUNT
};
