#include "forward.h"

namespace flannel {

namespace {

Egress Dropped(DropReason reason, size_t icmp_len = 0) { return Egress{false, reason, icmp_len, nullptr, false}; }

Ingress Refused(DropReason reason) { return Ingress{false, reason, 0}; }

}  // namespace

Egress DecideEgress(const VnetHdr& hdr, uint8_t* pkt, size_t len, const std::vector<Route>& routes,
                    const EgressConfig& config, uint8_t* headers, SplitResult* out, uint8_t* icmp) {
  Ipv4View ip;
  DropReason reason;
  if (!ParseIpv4(pkt, len, &ip, &reason)) return Dropped(reason);
  const Route* route = RouteTable::Lookup(routes, ip.dst);
  if (!route) return Dropped(kDropNoRoute, BuildNetUnreachable(pkt, ip.total_len, config.tun_ip, icmp, kIcmpReplyMax));
  if (!DecrementTtl(pkt)) return Dropped(kDropTtlExceeded);
  if (hdr.gso_type == kVnetGsoTcpV4) {
    if (!SplitTcpV4(hdr, pkt, len, config.mtu, headers, out)) return Dropped(kDropBadGso);
    return Egress{true, kDropCount, 0, route, true};
  }
  if ((hdr.flags & kVnetNeedsCsum) && !CompleteChecksum(pkt, ip.total_len, hdr.csum_start, hdr.csum_offset))
    return Dropped(kDropBadGso);
  out->count = 1;
  out->segment_size = ip.total_len;
  out->total = ip.total_len;
  out->iov[0] = {pkt, ip.total_len};
  out->iov[1] = {pkt + ip.total_len, 0};
  return Egress{true, kDropCount, 0, route, false};
}

Ingress DecideIngress(uint8_t* pkt, size_t len, uint32_t sender, const std::vector<Route>& routes, bool anti_spoofing) {
  Ipv4View ip;
  DropReason reason;
  if (!ParseIpv4(pkt, len, &ip, &reason)) return Refused(reason);
  if (anti_spoofing) {
    // The sender must be the host whose lease holds the inner source, or it could inject any address.
    const Route* owner = RouteTable::Lookup(routes, ip.src);
    if (!owner) return Refused(kDropUnknownSource);
    if (owner->peer_ip != sender) return Refused(kDropSpoofedSource);
  }
  if (!DecrementTtl(pkt)) return Refused(kDropTtlExceeded);
  return Ingress{true, kDropCount, ip.total_len};
}

}  // namespace flannel
