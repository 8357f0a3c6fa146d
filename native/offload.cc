#include "offload.h"

#include <cstring>

#include "bytes.h"
#include "packet.h"

namespace flannel {

namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10, kTcpUrg = 0x20,
                  kTcpEce = 0x40, kTcpCwr = 0x80;

// Sum of the IPv4 pseudo header (RFC 793) for a transport segment of `length` bytes.
uint32_t PseudoHeaderSum(const uint8_t* ip, uint8_t protocol, size_t length) {
  uint32_t sum = ChecksumPartial(ip + 12, 8, 0);
  return sum + protocol + static_cast<uint32_t>(length);
}

void FixIpHeader(uint8_t* ip, size_t ihl, size_t total, uint16_t id) {
  Store16(ip + 2, static_cast<uint16_t>(total));
  Store16(ip + 4, id);
  Store16(ip + 10, 0);
  Store16(ip + 10, ChecksumFinish(ChecksumPartial(ip, ihl, 0)));
}

// TCP checksum of a segment whose headers and payload are in different places.
void FillTcpChecksum(uint8_t* ip, size_t ihl, size_t thl, const uint8_t* payload, size_t payload_len) {
  uint8_t* tcp = ip + ihl;
  Store16(tcp + 16, 0);
  uint32_t sum = PseudoHeaderSum(ip, 6, thl + payload_len);
  sum = ChecksumPartial(tcp, thl, sum);  // thl is a multiple of 4, so the payload starts on an even offset
  Store16(tcp + 16, ChecksumFinish(ChecksumPartial(payload, payload_len, sum)));
}

}  // namespace

bool CompleteChecksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset) {
  if (static_cast<size_t>(csum_start) + csum_offset + 2 > len) return false;
  uint16_t sum = ChecksumFinish(ChecksumPartial(pkt + csum_start, len - csum_start, 0));
  // UDP sends an all-zero checksum as 0xffff (RFC 768); harmless for TCP, which never yields 0 after ~.
  Store16(pkt + csum_start + csum_offset, sum == 0 ? 0xffff : sum);
  return true;
}

bool SplitTcpV4(const VnetHdr& hdr, const uint8_t* pkt, size_t len, size_t mtu, uint8_t* headers, SplitResult* out) {
  Ipv4View ip;
  DropReason reason;
  if (!ParseIpv4(pkt, len, &ip, &reason) || ip.protocol != 6) return false;
  size_t ihl = ip.header_len;
  // The kernel may leave total length wrong for super packets; trust the buffer length instead.
  size_t total = len;
  const uint8_t* tcp = pkt + ihl;
  if (ihl + 20 > total) return false;
  size_t thl = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (thl < 20 || ihl + thl > total) return false;
  size_t header_len = ihl + thl;
  size_t payload = total - header_len;
  size_t mss = hdr.gso_size;
  if (mss == 0 || header_len + mss > mtu) mss = mtu > header_len ? mtu - header_len : 0;
  if (mss == 0) return false;
  size_t count = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (count > kMaxSegments) return false;

  uint16_t id = Load16(pkt + 4);
  uint32_t seq = Load32(tcp + 4);
  uint8_t flags = tcp[13];
  for (size_t i = 0; i < count; i++) {
    size_t chunk = payload - i * mss < mss ? payload - i * mss : mss;
    const uint8_t* data = pkt + header_len + i * mss;
    uint8_t* h = headers + i * kMaxHeaders;
    std::memcpy(h, pkt, header_len);
    uint8_t* t = h + ihl;
    Store32(t + 4, seq + static_cast<uint32_t>(i * mss));
    uint8_t f = flags;
    if (i + 1 < count) f &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i > 0) f &= static_cast<uint8_t>(~kTcpCwr);
    t[13] = f;
    // Segments of one super packet get consecutive IDs, as the kernel's own TSO does (DF is set for TCP).
    FixIpHeader(h, ihl, header_len + chunk, static_cast<uint16_t>(id + i));
    FillTcpChecksum(h, ihl, thl, data, chunk);
    out->iov[2 * i] = {h, header_len};
    out->iov[2 * i + 1] = {const_cast<uint8_t*>(data), chunk};
  }
  out->count = count;
  out->segment_size = header_len + (count > 1 ? mss : payload);
  out->total = count * header_len + payload;
  return true;
}

bool TransportChecksumValid(const uint8_t* pkt, size_t len, size_t header_len) {
  if (len <= header_len) return false;
  uint32_t sum = PseudoHeaderSum(pkt, pkt[9], len - header_len);
  return ChecksumFinish(ChecksumPartial(pkt + header_len, len - header_len, sum)) == 0;
}

// A segment may start a run if it is plain in-order data: TCP over IPv4 without options or fragments, only
// ACK/PSH set, some payload, and a valid checksum (a merged packet is trusted by the kernel, so we check first).
bool TcpCoalescer::Start(const uint8_t* pkt, size_t len) {
  if (len < 40 || len > kMaxPacket || (pkt[0] & 0x0f) != 5 || pkt[9] != 6) return false;
  if ((Load16(pkt + 6) & 0x3fff) != 0) return false;  // MF or fragment offset
  const uint8_t* tcp = pkt + 20;
  size_t thl = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (thl < 20 || 20 + thl >= len) return false;
  uint8_t flags = tcp[13];
  if ((flags & ~(kTcpAck | kTcpPsh)) != 0 || !(flags & kTcpAck)) return false;
  if (!TransportChecksumValid(pkt, len, 20)) return false;
  hdr_bytes_ = 20 + thl;
  std::memset(head_, 0, sizeof(VnetHdr));
  std::memcpy(head_ + sizeof(VnetHdr), pkt, hdr_bytes_);
  iov_[0] = {head_, sizeof(VnetHdr) + hdr_bytes_};
  iov_[1] = {const_cast<uint8_t*>(pkt + hdr_bytes_), len - hdr_bytes_};
  iovcnt_ = 2;
  len_ = len;
  mss_ = len - hdr_bytes_;
  merged_ = 1;
  merged_bytes_ = len;
  last_short_ = false;
  psh_ = (flags & kTcpPsh) != 0;
  next_seq_ = Load32(tcp + 4) + static_cast<uint32_t>(mss_);
  active_ = true;
  return true;
}

bool TcpCoalescer::CanAppend(const uint8_t* pkt, size_t len) const {
  const uint8_t* head = head_ + sizeof(VnetHdr);
  if (last_short_ || psh_ || iovcnt_ >= static_cast<int>(1 + kMaxSegments)) return false;
  if (len <= hdr_bytes_ || len - hdr_bytes_ > mss_ || len_ + (len - hdr_bytes_) > kMaxPacket) return false;
  if ((pkt[0] & 0x0f) != 5 || pkt[9] != 6 || (Load16(pkt + 6) & 0x3fff) != 0) return false;
  // Same TOS, TTL, DF and addresses; same ports, ack, window, flags and options.
  if (pkt[1] != head[1] || pkt[8] != head[8] || (pkt[6] & 0x40) != (head[6] & 0x40)) return false;
  if (std::memcmp(pkt + 12, head + 12, 8) != 0) return false;
  const uint8_t* t = pkt + 20;
  const uint8_t* ht = head + 20;
  if (static_cast<size_t>(t[12] >> 4) * 4 + 20 != hdr_bytes_) return false;
  if (std::memcmp(t, ht, 4) != 0 || std::memcmp(t + 8, ht + 8, 4) != 0 || std::memcmp(t + 14, ht + 14, 2) != 0) return false;
  if ((t[13] & ~kTcpPsh) != (ht[13] & ~kTcpPsh)) return false;
  if (std::memcmp(t + 20, ht + 20, hdr_bytes_ - 40) != 0) return false;  // options, timestamps included
  if (Load32(t + 4) != next_seq_) return false;
  return TransportChecksumValid(pkt, len, 20);
}

void TcpCoalescer::Append(const uint8_t* pkt, size_t len) {
  size_t payload = len - hdr_bytes_;
  iov_[iovcnt_++] = {const_cast<uint8_t*>(pkt + hdr_bytes_), payload};
  len_ += payload;
  merged_++;
  merged_bytes_ += len;
  next_seq_ += static_cast<uint32_t>(payload);
  if (payload < mss_) last_short_ = true;
  if (pkt[20 + 13] & kTcpPsh) {
    head_[sizeof(VnetHdr) + 20 + 13] |= kTcpPsh;
    psh_ = true;
  }
}

void TcpCoalescer::Finish() {
  if (merged_ < 2) return;  // a lone segment goes out exactly as it came, behind a zero header
  uint8_t* ip = head_ + sizeof(VnetHdr);
  Store16(ip + 2, static_cast<uint16_t>(len_));
  Store16(ip + 10, 0);
  Store16(ip + 10, ChecksumFinish(ChecksumPartial(ip, 20, 0)));
  // NEEDS_CSUM: the TCP checksum field carries the pseudo-header sum; the kernel finishes it if it must.
  uint32_t pseudo = PseudoHeaderSum(ip, 6, len_ - 20);
  while (pseudo >> 16) pseudo = (pseudo & 0xffff) + (pseudo >> 16);
  Store16(ip + 20 + 16, static_cast<uint16_t>(pseudo));
  VnetHdr hdr{};
  hdr.flags = kVnetNeedsCsum;
  hdr.gso_type = kVnetGsoTcpV4;
  hdr.hdr_len = static_cast<uint16_t>(hdr_bytes_);
  hdr.gso_size = static_cast<uint16_t>(mss_);
  hdr.csum_start = 20;
  hdr.csum_offset = 16;
  std::memcpy(head_, &hdr, sizeof hdr);
}

}  // namespace flannel
