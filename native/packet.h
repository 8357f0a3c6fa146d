// IPv4 packet checks and edits done per packet by the engine. Pure functions over caller-owned buffers:
// no allocation, no I/O, so they can be unit-tested from JS through the addon's _test hooks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

// The largest IPv4 packet (its total length is 16 bits): the size of every packet buffer.
constexpr size_t kMaxPacket = 65535;

// Why a packet was not forwarded. Values index the engine's drop counters; keep in sync with kDropNames.
enum DropReason : int {
  kDropTruncated = 0,      // shorter than an IPv4 header, or than its own total length
  kDropNotIpv4,            // version nibble is not 4
  kDropBadHeaderLength,    // IHL < 5 or header longer than the packet
  kDropTtlExceeded,        // TTL would reach zero
  kDropNoRoute,            // no lease holds the destination (an ICMP net unreachable goes back)
  kDropSpoofedSource,      // inner source is not in the sending host's lease
  kDropUnknownSource,      // no lease holds the inner source (anti-spoofing on)
  kDropTunWriteError,
  kDropSendError,
  kDropBadGso,             // a super packet from the TUN that could not be segmented
  kDropEmpty,              // a datagram (or TUN read) of 0 bytes
  kDropCount
};

extern const char* const kDropNames[kDropCount];

struct Ipv4View {
  uint32_t src;  // host byte order
  uint32_t dst;
  size_t header_len;
  size_t total_len;
  uint8_t protocol;
  uint8_t ttl;
  bool first_fragment;
};

// Checks that buf holds a well-formed IPv4 header and returns its fields; on failure returns false with *reason
// (kDropEmpty for len 0, so that every datagram a peer sends ends in exactly one counter).
bool ParseIpv4(const uint8_t* buf, size_t len, Ipv4View* out, DropReason* reason);

// Decrements the TTL and patches the header checksum incrementally (RFC 1624). Returns false (packet untouched)
// when the TTL is already 0 or 1: a router must not forward it.
bool DecrementTtl(uint8_t* buf);

// The ones'-complement Internet checksum (RFC 1071) over len bytes, folded, not inverted.
uint32_t ChecksumPartial(const uint8_t* data, size_t len, uint32_t sum);
uint16_t ChecksumFinish(uint32_t sum);

// Builds an ICMP Destination Unreachable / Net Unreachable (type 3 code 0) answering `packet`, from `src`
// (host order), into out (capacity out_cap). Returns its length, or 0 when no error may be sent (the offending
// packet is itself an ICMP error, or a non-first fragment) or the buffer is too small.
size_t BuildNetUnreachable(const uint8_t* packet, size_t len, uint32_t src, uint8_t* out, size_t out_cap);

}  // namespace flannel
