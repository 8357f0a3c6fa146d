// TCP segmentation and coalescing for a TUN device opened with IFF_VNET_HDR + TUNSETOFFLOAD.
//
// With offloads on, the kernel hands us TCP "super packets" of up to 64 KiB (one virtio_net_hdr in front) and
// accepts the same from us. flannel's wire format is one ordinary IPv4 packet per UDP datagram, no larger than
// the TUN MTU, with complete checksums, so that a flannel peer can read it. So we split super packets into
// MTU-sized segments before sending (equal sizes but the last, ready for one UDP_SEGMENT send) and merge received
// in-order segments of a flow into one super packet before writing to the TUN.
//
// Neither direction copies payload: a split yields, per segment, a rebuilt header plus a pointer into the super
// packet; a merge yields one header plus pointers into the received datagrams. The kernel gathers them (iovecs),
// so the only copies left are the ones into and out of the kernel.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "packet.h"

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
constexpr uint8_t kVnetGsoTcpV4 = 1;    // VIRTIO_NET_HDR_GSO_TCPV4

// At most this many segments come out of one 64 KiB super packet (64 KiB over the smallest MSS we accept).
constexpr size_t kMaxSegments = 128;
// Largest IP+TCP header (60 + 60 bytes).
constexpr size_t kMaxHeaders = 120;

// Fills in a checksum the kernel left partial (NEEDS_CSUM): the field at csum_start+csum_offset holds the
// pseudo-header sum; the result covers csum_start..len. Returns false if the offsets fall outside the packet.
bool CompleteChecksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

// Verifies the TCP (or UDP) checksum of a complete IPv4 packet. header_len is the IP header length.
bool TransportChecksumValid(const uint8_t* pkt, size_t len, size_t header_len);

struct SplitResult {
  size_t count;         // segments
  size_t segment_size;  // wire size of every segment but the last (which may be shorter)
  size_t total;         // wire bytes of all segments
  // Segment i is iov[2i] (its headers, in the caller's header arena) then iov[2i+1] (payload inside pkt).
  iovec iov[2 * kMaxSegments];
};

// Splits a TCPv4 GSO super packet into IPv4 packets of at most mtu bytes, each with its own total length,
// IP id (incremented), header checksum, TCP sequence number, flags (FIN/PSH only on the last, CWR only on the
// first) and full TCP checksum. IP options are kept. `headers` needs kMaxSegments * kMaxHeaders bytes.
// Returns false for malformed input.
bool SplitTcpV4(const VnetHdr& hdr, const uint8_t* pkt, size_t len, size_t mtu, uint8_t* headers, SplitResult* out);

// Merges consecutive in-order TCP segments of one flow into a super packet with a virtio_net_hdr (GSO TCPv4,
// NEEDS_CSUM with the pseudo-header sum), the way GRO would. Anything that cannot be merged passes through as a
// single packet behind a zero header. Emit gets (iov, iovcnt) for each TUN write. Packets handed to Add must stay
// in place until the next Flush.
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
    iovec iov[2] = {{zero_hdr_, sizeof(VnetHdr)}, {const_cast<uint8_t*>(pkt), len}};
    merged_ = 1;
    merged_bytes_ = len;
    emit(iov, 2);
  }

  template <typename Emit>
  void Flush(Emit&& emit) {
    if (!active_) return;
    active_ = false;
    Finish();
    emit(iov_, iovcnt_);
  }

  // How many datagrams the last emitted write carried, and their bytes as they arrived (each with its own headers).
  size_t merged() const { return merged_; }
  size_t merged_bytes() const { return merged_bytes_; }

 private:
  bool Start(const uint8_t* pkt, size_t len);
  bool CanAppend(const uint8_t* pkt, size_t len) const;
  void Append(const uint8_t* pkt, size_t len);
  void Finish();

  bool active_ = false;
  bool psh_ = false;
  bool last_short_ = false;
  size_t len_ = 0;        // IP packet bytes of the run so far
  size_t hdr_bytes_ = 0;  // IP + TCP header length
  size_t mss_ = 0;        // payload size of the first segment
  size_t merged_ = 0;
  size_t merged_bytes_ = 0;
  uint32_t next_seq_ = 0;
  int iovcnt_ = 0;
  // iov_[0]: head_ (vnet header + the first segment's headers); then one payload iovec per segment.
  iovec iov_[1 + kMaxSegments];
  uint8_t head_[sizeof(VnetHdr) + kMaxHeaders];
  uint8_t zero_hdr_[sizeof(VnetHdr)] = {};
};

}  // namespace flannel
