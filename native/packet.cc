#include "packet.h"

#include <cstring>

#include "bytes.h"

namespace flannel {

const char* const kDropNames[kDropCount] = {
    "truncated", "not_ipv4", "bad_header_length", "ttl_exceeded", "no_route",
    "spoofed_source", "unknown_source", "tun_write_error", "send_error", "bad_gso", "empty",
};

bool ParseIpv4(const uint8_t* buf, size_t len, Ipv4View* out, DropReason* reason) {
  if (len == 0) {
    *reason = kDropEmpty;
    return false;
  }
  if (len < 20) {
    *reason = kDropTruncated;
    return false;
  }
  if ((buf[0] >> 4) != 4) {
    *reason = kDropNotIpv4;
    return false;
  }
  size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > len) {
    *reason = kDropBadHeaderLength;
    return false;
  }
  size_t total = Load16(buf + 2);
  if (total < ihl) {
    *reason = kDropBadHeaderLength;
    return false;
  }
  if (total > len) {
    *reason = kDropTruncated;
    return false;
  }
  out->header_len = ihl;
  out->total_len = total;
  out->ttl = buf[8];
  out->protocol = buf[9];
  out->src = Load32(buf + 12);
  out->dst = Load32(buf + 16);
  out->first_fragment = (Load16(buf + 6) & 0x1fff) == 0;
  return true;
}

bool DecrementTtl(uint8_t* buf) {
  if (buf[8] <= 1) return false;
  // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), where m is the 16-bit word holding TTL and protocol.
  uint16_t old_word = Load16(buf + 8);
  buf[8] -= 1;
  uint16_t new_word = Load16(buf + 8);
  uint32_t sum = static_cast<uint16_t>(~Load16(buf + 10)) + static_cast<uint16_t>(~old_word) + new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  Store16(buf + 10, static_cast<uint16_t>(~sum));
  return true;
}

uint32_t ChecksumPartial(const uint8_t* data, size_t len, uint32_t sum) {
  // The ones'-complement sum does not depend on byte order (RFC 1071 2.B): add native 32-bit words into a 64-bit
  // accumulator, fold, and swap once at the end. Several times faster than 16-bit big-endian loads, and this
  // runs over every byte of every TCP segment we split or merge.
  uint64_t acc = 0;
  while (len >= 16) {
    uint32_t w[4];
    std::memcpy(w, data, 16);
    acc += static_cast<uint64_t>(w[0]) + w[1] + w[2] + w[3];
    data += 16;
    len -= 16;
  }
  while (len >= 4) {
    uint32_t w;
    std::memcpy(&w, data, 4);
    acc += w;
    data += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, data, 2);
    acc += w;
    data += 2;
    len -= 2;
  }
  if (len) {
    // A trailing byte is the high half of a big-endian word: in native (little-endian) order, the low byte.
    uint16_t w = 0;
    std::memcpy(&w, data, 1);
    acc += w;
  }
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint16_t native = static_cast<uint16_t>(acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  native = static_cast<uint16_t>((native >> 8) | (native << 8));
#endif
  uint64_t total = static_cast<uint64_t>(sum) + native;
  while (total >> 32) total = (total & 0xffffffffu) + (total >> 32);
  return static_cast<uint32_t>(total);
}

uint16_t ChecksumFinish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

static bool IsIcmpError(const uint8_t* packet, const Ipv4View& v) {
  if (v.protocol != 1) return false;
  if (v.total_len < v.header_len + 1) return true;  // unreadable ICMP: stay silent
  uint8_t type = packet[v.header_len];
  // Echo reply/request, timestamp, info and address-mask messages are queries; everything else is an error.
  return !(type == 0 || type == 8 || type == 13 || type == 14 || type == 15 || type == 16 || type == 17 || type == 18);
}

size_t BuildNetUnreachable(const uint8_t* packet, size_t len, uint32_t src, uint8_t* out, size_t out_cap) {
  Ipv4View v;
  DropReason reason;
  if (!ParseIpv4(packet, len, &v, &reason)) return 0;
  if (!v.first_fragment || IsIcmpError(packet, v)) return 0;  // RFC 1812 4.3.2.7
  // RFC 792: the offending header plus the first 8 bytes of its payload.
  size_t quoted = v.header_len + 8 < v.total_len ? v.header_len + 8 : v.total_len;
  size_t total = 20 + 8 + quoted;
  if (total > out_cap) return 0;
  std::memset(out, 0, 28);
  out[0] = 0x45;
  Store16(out + 2, static_cast<uint16_t>(total));
  out[8] = 8;  // flannel's proxy uses 8: the answer only has to reach a container on this host
  out[9] = 1;  // ICMP
  Store32(out + 12, src);
  Store32(out + 16, v.src);
  Store16(out + 10, ChecksumFinish(ChecksumPartial(out, 20, 0)));
  uint8_t* icmp = out + 20;
  icmp[0] = 3;  // destination unreachable
  icmp[1] = 0;  // net unreachable
  std::memcpy(icmp + 8, packet, quoted);
  Store16(icmp + 2, ChecksumFinish(ChecksumPartial(icmp, 8 + quoted, 0)));
  return total;
}

}  // namespace flannel
