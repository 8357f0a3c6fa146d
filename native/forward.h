// The engine's forwarding decisions, apart from its batching I/O (as wireguard-go keeps device/ apart from conn/):
// what becomes of one packet read from the TUN, and of one datagram received from a peer. Plain functions over
// caller-owned buffers and a route snapshot, with no I/O and no counters, so unit tests can call them on
// hand-built packets (through the addon's _test hooks) and the engine only moves bytes and counts outcomes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "offload.h"
#include "packet.h"
#include "route_table.h"

namespace flannel {

// Room for an ICMP error: RFC 1812 caps what a router sends at 576 bytes.
constexpr size_t kIcmpReplyMax = 576;

struct EgressConfig {
  uint32_t tun_ip;  // host order: the source of ICMP errors written back into the TUN
  size_t mtu;       // the TUN MTU: no datagram on the wire is longer
};

struct Egress {
  bool send;          // false: dropped for `drop`
  DropReason drop;
  // No route: an ICMP net unreachable of this many bytes was built in the caller's `icmp` buffer, for the TUN.
  // 0 when none may be sent (an ICMP error or a later fragment is never answered).
  size_t icmp_len;
  const Route* route;  // send: the peer, an element of `routes`
  bool split;          // send: a TCP super packet was cut into `out->count` segments
};

// Decides on one packet read from the TUN (`hdr` is its virtio_net_hdr, all zero without offloads): parse, route
// lookup (ICMP net unreachable when no lease holds the destination), TTL, then the datagrams to send. Edits pkt in
// place (TTL, completed checksum). On send, `out` holds the datagrams: datagram i is out->iov[2i] then
// out->iov[2i+1] (the second may be empty), all of out->segment_size bytes but the last; `headers` needs
// kMaxSegments * kMaxHeaders bytes and `icmp` kIcmpReplyMax.
Egress DecideEgress(const VnetHdr& hdr, uint8_t* pkt, size_t len, const std::vector<Route>& routes,
                    const EgressConfig& config, uint8_t* headers, SplitResult* out, uint8_t* icmp);

struct Ingress {
  bool deliver;  // false: dropped for `drop`
  DropReason drop;
  size_t len;    // deliver: the packet's own length (a datagram may carry trailing bytes after it)
};

// Decides on one datagram from `sender` (host order): parse, then with anti-spoofing the inner source must lie in
// the sender's own lease, then TTL (decremented in place when delivered).
Ingress DecideIngress(uint8_t* pkt, size_t len, uint32_t sender, const std::vector<Route>& routes, bool anti_spoofing);

}  // namespace flannel
