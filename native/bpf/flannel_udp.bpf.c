// The udp backend's fast path: flannel's wire format (one raw IPv4 packet as the whole payload of a UDP datagram,
// port 8285 to 8285) carried by two tc programs, so packets between two hosts never leave the kernel.
//
//   flannel_egress   tc egress on flannel0: packet for a peer lease -> TTL - 1, outer IPv4/UDP, out the external
//                    interface through the neighbour table.
//   flannel_ingress  tc ingress on the external interface: datagram to our address and port -> anti-spoofing,
//                    outer headers off, TTL - 1, into flannel0's ingress as if the engine had written it.
//
// Whatever a program does not handle it returns TC_ACT_OK untouched: on flannel0 the packet then reaches the TUN
// and the native engine, on the external interface the engine's UDP socket. So the engine stays the slow path for
// ICMP unreachable, IP options, fragments, and peers that do not run the fast path, and behaves as it always did.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flannel_udp.h"

#define OUTER_LEN (sizeof(struct iphdr) + sizeof(struct udphdr))
#define IP_MF 0x2000
#define IP_DF 0x4000
#define IP_OFFSET 0x1fff
#define OUTER_TTL 64  // what a Linux UDP socket sends with (net.ipv4.ip_default_ttl), so the engine's datagrams match

// Clears the stale UDP tunnel GSO state that decapsulation leaves on an skb (kernels after 6.18); older kernels
// reject the flag with EINVAL, and the program then stops asking (see decap()).
#define ADJ_ROOM_DECAP_L4_UDP (1ULL << 10)

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fp_config);
} config SEC(".maps");

// Peer leases, like the engine's route table; TypeScript fills both from the lease watch.
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct fp_route_key);
  __type(value, struct fp_peer);
} routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FP_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

// Extra decap flags still worth trying on this kernel; cleared on the first EINVAL.
volatile __u64 decap_extra_flags = ADJ_ROOM_DECAP_L4_UDP;

static __always_inline void count(__u32 index, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&counters, &index);
  if (v) *v += n;
}

static __always_inline int pass(__u32 reason) {
  count(reason, 1);
  return TC_ACT_OK;
}

static __always_inline int drop(__u32 reason) {
  count(reason, 1);
  return TC_ACT_SHOT;
}

// The settings, or null when the packet is none of ours: the fast path is not started yet, or it is not IPv4.
static __always_inline const struct fp_config *config_for(const struct __sk_buff *skb) {
  __u32 zero = 0;
  const struct fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || !cfg->tun_ifindex || skb->protocol != bpf_htons(ETH_P_IP)) return 0;
  return cfg;
}

static __always_inline struct fp_peer *lookup_peer(__be32 addr) {
  struct fp_route_key key = {.prefixlen = 32, .subnet = addr};
  return bpf_map_lookup_elem(&routes, &key);
}

// A router's TTL decrement with the RFC 1624 incremental checksum update, as the engine does it.
static __always_inline void decrement_ttl(struct iphdr *ip) {
  __u32 check = ip->check;
  check += bpf_htons(0x0100);
  ip->check = (__u16)(check + (check >= 0xffff));
  ip->ttl--;
}

static __always_inline __u16 ipv4_checksum(const struct iphdr *ip) {
  const __u16 *w = (const __u16 *)ip;
  __u32 sum = 0;
#pragma unroll
  for (int i = 0; i < 10; i++) sum += w[i];
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

// The wire datagrams an IPv4 packet stands for, and their inner bytes: a TCP super packet (gso_size set) becomes
// ceil(payload / gso_size) segments that each repeat the IP and TCP headers. `tcp` may be null when not TCP.
struct wire_size {
  __u32 packets;
  __u32 bytes;
};

static __always_inline struct wire_size wire_size(__u32 ip_len, __u32 gso_size, const struct tcphdr *tcp) {
  struct wire_size w = {.packets = 1, .bytes = ip_len};
  if (!gso_size || !tcp) return w;
  __u32 headers = sizeof(struct iphdr) + tcp->doff * 4;
  if (ip_len <= headers) return w;
  __u32 segs = (ip_len - headers + gso_size - 1) / gso_size;
  if (segs > 1) {
    w.packets = segs;
    w.bytes = ip_len + (segs - 1) * headers;
  }
  return w;
}

SEC("tc")
int flannel_egress(struct __sk_buff *skb) {
  const struct fp_config *cfg = config_for(skb);
  if (!cfg) return TC_ACT_OK;

  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *ip = data;  // a TUN has no link-layer header: the IPv4 header comes first
  if ((void *)(ip + 1) > end) return pass(FP_PASS_UNUSUAL);
  if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
    return pass(FP_PASS_UNUSUAL);
  __u32 len = skb->len;
  if (bpf_ntohs(ip->tot_len) != len) return pass(FP_PASS_UNUSUAL);
  // The engine segments only TCP super packets; others (UDP GSO) are left to the kernel before the TUN.
  if (skb->gso_size && ip->protocol != IPPROTO_TCP) return pass(FP_PASS_UNUSUAL);
  if (len + OUTER_LEN > 0xffff) return pass(FP_PASS_TOO_BIG);

  struct fp_peer *peer = lookup_peer(ip->daddr);
  if (!peer) return pass(FP_PASS_NO_ROUTE);
  if (!(peer->flags & FP_PEER_FASTPATH)) return pass(FP_PASS_PLAIN_PEER);
  if (ip->ttl <= 1) return drop(FP_DROP_TTL_EXCEEDED);
  __be32 peer_ip = peer->ip;
  __be16 peer_port = peer->port;

  struct tcphdr *tcp = data + sizeof(struct iphdr);
  if (ip->protocol != IPPROTO_TCP || (void *)(tcp + 1) > end) tcp = 0;
  struct wire_size size = wire_size(len, skb->gso_size, tcp);

  // Room for the outer headers between the (empty) link layer and the packet. FIXED_GSO keeps a super packet's
  // segment size: each segment grows by exactly the 28 bytes that flannel0's MTU left free on the external link.
  __u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_FIXED_GSO;
  if (bpf_skb_adjust_room(skb, OUTER_LEN, BPF_ADJ_ROOM_MAC, flags)) return pass(FP_PASS_HELPER_FAILED);

  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  struct iphdr *outer = data;
  struct udphdr *udp = data + sizeof(struct iphdr);
  struct iphdr *inner = data + OUTER_LEN;
  if ((void *)(inner + 1) > end) return drop(FP_DROP_ENCAP_FAILED);
  decrement_ttl(inner);

  // What a UDP socket bound to local_ip:port would send: DF, ID 0, TTL 64, UDP checksum 0 (flannel's receivers and
  // ours accept it; IPv4 allows it).
  outer->version = 4;
  outer->ihl = 5;
  outer->tos = 0;
  outer->tot_len = bpf_htons(len + OUTER_LEN);
  outer->id = 0;
  outer->frag_off = bpf_htons(IP_DF);
  outer->ttl = OUTER_TTL;
  outer->protocol = IPPROTO_UDP;
  outer->check = 0;
  outer->saddr = cfg->local_ip;
  outer->daddr = peer_ip;
  outer->check = ipv4_checksum(outer);
  udp->source = cfg->port;
  udp->dest = peer_port;
  udp->len = bpf_htons(len + sizeof(struct udphdr));
  udp->check = 0;

  // bpf_redirect_neigh() wants a link-layer header to replace (it drops an skb without one, as a TUN's are):
  // push an empty Ethernet header; the neighbour table fills in the addresses.
  if (bpf_skb_change_head(skb, sizeof(struct ethhdr), 0)) return drop(FP_DROP_ENCAP_FAILED);
  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return drop(FP_DROP_ENCAP_FAILED);
  eth->h_proto = bpf_htons(ETH_P_IP);

  count(FP_TX_PACKETS, size.packets);
  count(FP_TX_BYTES, size.bytes);
  if (size.packets > 1) count(FP_TX_SUPER, 1);
  return bpf_redirect_neigh(cfg->ext_ifindex, 0, 0, 0);
}

// Takes the outer IPv4 and UDP headers off, keeping the Ethernet header in front (tc ingress sees one).
static __always_inline long decap(struct __sk_buff *skb) {
  __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
  __u64 extra = decap_extra_flags;
  long ret = bpf_skb_adjust_room(skb, -(__s32)OUTER_LEN, BPF_ADJ_ROOM_MAC, flags | extra);
  if (ret && extra) {
    decap_extra_flags = 0;
    ret = bpf_skb_adjust_room(skb, -(__s32)OUTER_LEN, BPF_ADJ_ROOM_MAC, flags);
  }
  return ret;
}

SEC("tc")
int flannel_ingress(struct __sk_buff *skb) {
  const struct fp_config *cfg = config_for(skb);
  if (!cfg) return TC_ACT_OK;

  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *outer = data + sizeof(struct ethhdr);
  struct udphdr *udp = (void *)(outer + 1);
  if ((void *)(udp + 1) > end) return TC_ACT_OK;
  // Not for our socket (or not recognisable as such without reassembly): none of our business.
  if (outer->version != 4 || outer->ihl != 5 || outer->protocol != IPPROTO_UDP || outer->daddr != cfg->local_ip ||
      (outer->frag_off & bpf_htons(IP_MF | IP_OFFSET)) || udp->dest != cfg->port)
    return TC_ACT_OK;

  __u32 outer_len = bpf_ntohs(outer->tot_len);
  struct iphdr *inner = (void *)(udp + 1);
  // Anything the engine would look at twice (truncated, padded, not IPv4, options, several datagrams merged by
  // GRO for its socket) goes to the engine, which drops or forwards it by its own rules.
  if (outer_len != skb->len - sizeof(struct ethhdr) || bpf_ntohs(udp->len) != outer_len - sizeof(struct iphdr))
    return pass(FP_PASS_UNUSUAL);
  if ((void *)(inner + 1) > end || inner->version != 4 || inner->ihl != 5) return pass(FP_PASS_UNUSUAL);
  __u32 len = bpf_ntohs(inner->tot_len);
  if (len != outer_len - OUTER_LEN) return pass(FP_PASS_UNUSUAL);
  if (skb->gso_size && inner->protocol != IPPROTO_TCP) return pass(FP_PASS_UNUSUAL);

  if (cfg->anti_spoofing) {
    // The sender must be the host whose lease holds the inner source, or it could inject any address.
    struct fp_peer *owner = lookup_peer(inner->saddr);
    if (!owner) return drop(FP_DROP_UNKNOWN_SOURCE);
    if (owner->ip != outer->saddr) return drop(FP_DROP_SPOOFED_SOURCE);
  }
  if (inner->ttl <= 1) return drop(FP_DROP_TTL_EXCEEDED);

  struct tcphdr *tcp = (void *)(inner + 1);
  if (inner->protocol != IPPROTO_TCP || (void *)(tcp + 1) > end) tcp = 0;
  struct wire_size size = wire_size(len, skb->gso_size, tcp);

  if (decap(skb)) return pass(FP_PASS_HELPER_FAILED);
  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  inner = data + sizeof(struct ethhdr);
  if ((void *)(inner + 1) > end) return drop(FP_DROP_ENCAP_FAILED);
  decrement_ttl(inner);

  count(FP_RX_PACKETS, size.packets);
  count(FP_RX_BYTES, size.bytes);
  if (size.packets > 1) count(FP_RX_SUPER, 1);
  // Into flannel0 as if received there (the engine's TUN write does the same): routing, netfilter and tcpdump on
  // flannel0 see what they always saw. The redirect drops the Ethernet header, which flannel0 does not have.
  return bpf_redirect(cfg->tun_ifindex, BPF_F_INGRESS);
}
