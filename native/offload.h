// TCP segmentation and coalescing for a TUN device opened with IFF_VNET_HDR + TUNSETOFFLOAD.
//
// With offloads on, the kernel hands us TCP "super packets" of up to 64 KiB (one virtio_net_hdr in front) and
// accepts the same from us. flannel's wire format is one ordinary IPv4 packet per UDP datagram, no larger than
// the TUN MTU, with complete checksums, so that a flannel peer can read it. So we split super packets into
// MTU-sized segments before sending (laid out back to back, equal sizes but the last, ready for one UDP_SEGMENT
// send) and merge received in-order segments of a flow into one super packet before writing to the TUN. Pure
// functions over caller-owned buffers: no allocation, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

// struct virtio_net_hdr (legacy layout, native byte order), as TUN reads and writes it.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10, "virtio_net_hdr is 10 bytes");

constexpr uint8_t kVnetNeedsCsum = 1;   // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetGsoNone = 0;     // VIRTIO_NET_HDR_GSO_NONE
constexpr uint8_t kVnetGsoTcpV4 = 1;    // VIRTIO_NET_HDR_GSO_TCPV4

// Fills in a checksum the kernel left partial (NEEDS_CSUM): the field at csum_start+csum_offset holds the
// pseudo-header sum; the result covers csum_start..len. Returns false if the offsets fall outside the packet.
bool CompleteChecksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

struct SplitResult {
  size_t total;         // bytes written to out
  size_t segment_size;  // size of every segment but the last (which may be shorter)
  size_t count;         // number of segments
};

// Splits a TCPv4 GSO super packet into IPv4 packets of at most mtu bytes, each with its own total length,
// IP id (incremented), header checksum, TCP sequence number, flags (FIN/PSH only on the last, CWR only on the
// first) and full TCP checksum. IP options are kept. Returns false for malformed input or a too-small out.
bool SplitTcpV4(const VnetHdr& hdr, const uint8_t* pkt, size_t len, size_t mtu, uint8_t* out, size_t out_cap,
                SplitResult* result);

// Verifies the TCP (or UDP) checksum of a complete IPv4 packet. header_len is the IP header length.
bool TransportChecksumValid(const uint8_t* pkt, size_t len, size_t header_len);

// Merges consecutive in-order TCP segments of one flow into a super packet with a virtio_net_hdr (GSO TCPv4,
// NEEDS_CSUM with the pseudo-header sum), the way GRO would. Anything that cannot be merged passes through as a
// single packet with a zero header. Emit is called with (vnet header + packet, length) for each TUN write.
class TcpCoalescer {
 public:
  template <typename Emit>
  void Add(const uint8_t* pkt, size_t len, Emit&& emit) {
    if (active_ && CanAppend(pkt, len)) {
      Append(pkt, len);
      if (psh_) Flush(emit);  // PSH ends a run, as in GRO
      return;
    }
    Flush(emit);
    if (Start(pkt, len)) {
      if (psh_) Flush(emit);
      return;
    }
    EmitSingle(pkt, len, emit);
  }

  template <typename Emit>
  void Flush(Emit&& emit) {
    if (!active_) return;
    active_ = false;
    size_t n = Finish();
    emit(buf_, n);
  }

  // The last coalesced or single packet's count of merged segments (for tests and counters).
  size_t merged_segments() const { return merged_total_; }

  static constexpr size_t kMaxPacket = 65535;

 private:
  template <typename Emit>
  void EmitSingle(const uint8_t* pkt, size_t len, Emit&& emit) {
    if (len > kMaxPacket) return;
    WriteZeroHdr(single_);
    __builtin_memcpy(single_ + sizeof(VnetHdr), pkt, len);
    emit(single_, sizeof(VnetHdr) + len);
  }

  bool Start(const uint8_t* pkt, size_t len);
  bool CanAppend(const uint8_t* pkt, size_t len) const;
  void Append(const uint8_t* pkt, size_t len);
  size_t Finish();
  static void WriteZeroHdr(uint8_t* out);

  bool active_ = false;
  bool psh_ = false;
  size_t len_ = 0;       // IP packet bytes in buf_ after the header
  size_t hdr_bytes_ = 0; // IP + TCP header length
  size_t mss_ = 0;       // payload size of the first segment
  size_t segments_ = 0;
  size_t merged_total_ = 0;
  bool last_short_ = false;
  uint32_t next_seq_ = 0;
  uint8_t buf_[sizeof(VnetHdr) + kMaxPacket];
  uint8_t single_[sizeof(VnetHdr) + kMaxPacket];
};

}  // namespace flannel
