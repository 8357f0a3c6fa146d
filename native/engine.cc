#include "engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "offload.h"
#include "sys_error.h"
#include "tun.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace flannel {

namespace {

// TUN reads per wakeup (each may be a 64 KiB super packet) and datagram batches per recvmmsg.
constexpr int kTunBatch = 32;
constexpr int kRxBatch = 16;
constexpr size_t kMaxPacket = 65535;
constexpr size_t kHdr = sizeof(VnetHdr);
// One UDP_SEGMENT send must stay under the 64 KiB IP datagram limit, and under the kernel's segment cap.
constexpr size_t kMaxGsoBytes = 60000;
constexpr size_t kMaxGsoSegments = 64;
// Up to this many messages can come from one TUN read (a split that exceeds one UDP_SEGMENT send).
constexpr int kMsgsPerRead = 3;

struct TxBatch {
  struct Slot {
    uint8_t in[kHdr + kMaxPacket];
    uint8_t headers[kMaxSegments * kMaxHeaders];  // rebuilt segment headers; payloads stay in `in`
    SplitResult split;
  };
  std::vector<Slot> slots = std::vector<Slot>(kTunBatch);
  mmsghdr msgs[kTunBatch * kMsgsPerRead];
  sockaddr_in addrs[kTunBatch * kMsgsPerRead];
  alignas(cmsghdr) uint8_t ctrl[kTunBatch * kMsgsPerRead][CMSG_SPACE(sizeof(uint16_t))];
  size_t segments[kTunBatch * kMsgsPerRead];
  size_t bytes[kTunBatch * kMsgsPerRead];
};

struct RxBatch {
  struct Slot {
    uint8_t buf[kMaxPacket + 1];
  };
  std::vector<Slot> slots = std::vector<Slot>(kRxBatch);
  mmsghdr msgs[kRxBatch];
  iovec iov[kRxBatch];
  sockaddr_in addrs[kRxBatch];
  alignas(cmsghdr) uint8_t ctrl[kRxBatch][CMSG_SPACE(sizeof(int))];

  RxBatch() {
    std::memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < kRxBatch; i++) {
      iov[i] = {slots[i].buf, sizeof slots[i].buf};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
    }
  }
  void Reset(bool gro) {
    for (int i = 0; i < kRxBatch; i++) {
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      msgs[i].msg_hdr.msg_control = gro ? ctrl[i] : nullptr;
      msgs[i].msg_hdr.msg_controllen = gro ? sizeof ctrl[i] : 0;
      msgs[i].msg_hdr.msg_flags = 0;
    }
  }
};

// The datagram size the kernel used when it merged datagrams into one read, or 0 if it did not.
size_t GroSegmentSize(msghdr& hdr) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
    if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
      int size;
      std::memcpy(&size, CMSG_DATA(c), sizeof size);
      return size > 0 ? static_cast<size_t>(size) : 0;
    }
  }
  return 0;
}

}  // namespace

Engine::Engine(const EngineOptions& options) : options_(options), tun_ip_(options.tun_ip) {
  if (options.queues < 1 || options.queues > kMaxQueues)
    throw std::invalid_argument("Usage: queues must be 1.." + std::to_string(kMaxQueues));
  vnet_hdr_ = options.offload;
  try {
    OpenQueues();
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw SysError("eventfd", errno);
  } catch (...) {
    Stop();
    throw;
  }
  for (Queue& q : queues_) {
    q.tun_to_udp = std::thread(&Engine::TunToUdpLoop, this, std::ref(q));
    q.udp_to_tun = std::thread(&Engine::UdpToTunLoop, this, std::ref(q));
  }
}

void Engine::OpenQueues() {
  const bool multi = options_.queues > 1;
  queues_.reserve(options_.queues);  // threads keep references to their Queue: no reallocation after this
  for (size_t i = 0; i < options_.queues; i++) {
    queues_.emplace_back();
    Queue& q = queues_.back();
    q.index = i;
    TunDevice tun = OpenTun(i == 0 ? options_.tun_name : tun_name_, vnet_hdr_, multi);
    q.tun_fd = tun.fd;
    if (i == 0) {
      tun_name_ = tun.name;
      tun_offload_ = options_.offload && EnableTunOffload(q.tun_fd);
    } else if (tun_offload_) {
      EnableTunOffload(q.tun_fd);
    }
    // Sockets join the SO_REUSEPORT group in queue order, which is the index the steering program returns.
    q.udp_fd = OpenUdpSocket(options_.local_ip, options_.port, multi);
    bool gro = options_.offload && EnableUdpGro(q.udp_fd);
    udp_gro_ = i == 0 ? gro : udp_gro_ && gro;
  }
  if (multi) SteerByInnerFlow(queues_[0].udp_fd, queues_.size());
}

Engine::~Engine() { Stop(); }

void Engine::Stop() {
  if (!stopping_.exchange(true)) {
    if (wake_fd_ >= 0) {
      uint64_t one = 1;
      if (write(wake_fd_, &one, sizeof one) < 0) { /* threads also poll stopping_ with a timeout */ }
    }
  }
  for (Queue& q : queues_) {
    if (q.tun_to_udp.joinable()) q.tun_to_udp.join();
    if (q.udp_to_tun.joinable()) q.udp_to_tun.join();
  }
  for (Queue& q : queues_) {
    for (int* fd : {&q.tun_fd, &q.udp_fd}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

// Blocks until fd is readable or Stop() is called; returns false when stopping.
bool Engine::WaitReadable(int fd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stopping_.load(std::memory_order_relaxed)) {
    int n = poll(fds, 2, 1000);
    if (n < 0 && errno != EINTR) return false;
    if (fds[1].revents) return false;
    if (n > 0 && fds[0].revents) return true;
  }
  return false;
}

// One TUN write gathered from iov; iov[0] starts with kHdr bytes of virtio_net_hdr, which reach the TUN only when
// it was opened with one. iov is left as it was given.
bool Engine::WriteTun(int tun_fd, iovec* iov, int iovcnt) {
  iovec first = iov[0];
  if (!vnet_hdr_) {
    iov[0].iov_base = static_cast<uint8_t*>(iov[0].iov_base) + kHdr;
    iov[0].iov_len -= kHdr;
  }
  ssize_t expected = 0;
  for (int k = 0; k < iovcnt; k++) expected += static_cast<ssize_t>(iov[k].iov_len);
  bool ok = writev(tun_fd, iov, iovcnt) == expected;
  iov[0] = first;
  return ok;
}

void Engine::TunToUdpLoop(Queue& q) {
  auto batch = std::make_unique<TxBatch>();
  uint8_t icmp[kHdr + 576];
  const size_t hdr_len = vnet_hdr_ ? kHdr : 0;
  while (WaitReadable(q.tun_fd)) {
    RouteTable::Snapshot routes = routes_.Load();
    int queued = 0;
    // Queues one datagram (or a UDP_SEGMENT batch of them) gathered from `iov`.
    auto queue = [&](iovec* iov, size_t iovcnt, size_t bytes, size_t segment_size, size_t segments, const Route* route) {
      int i = queued++;
      sockaddr_in& to = batch->addrs[i];
      to.sin_family = AF_INET;
      to.sin_port = htons(route->peer_port);
      to.sin_addr.s_addr = htonl(route->peer_ip);
      msghdr& m = batch->msgs[i].msg_hdr;
      std::memset(&m, 0, sizeof m);
      m.msg_name = &to;
      m.msg_namelen = sizeof to;
      m.msg_iov = iov;
      m.msg_iovlen = iovcnt;
      batch->segments[i] = segments;
      batch->bytes[i] = bytes;
      if (segments > 1) {
        // UDP GSO only batches the syscall: the kernel cuts this into `segments` ordinary datagrams.
        m.msg_control = batch->ctrl[i];
        m.msg_controllen = sizeof batch->ctrl[i];
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = IPPROTO_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t size = static_cast<uint16_t>(segment_size);
        std::memcpy(CMSG_DATA(c), &size, sizeof size);
      }
    };

    for (int reads = 0; reads < kTunBatch; reads++) {
      TxBatch::Slot& slot = batch->slots[reads];
      ssize_t n = read(q.tun_fd, slot.in, sizeof slot.in);
      if (n < 0) break;  // EAGAIN: drained
      if (static_cast<size_t>(n) < hdr_len) continue;
      VnetHdr hdr{};
      if (vnet_hdr_) std::memcpy(&hdr, slot.in, kHdr);
      uint8_t* pkt = slot.in + hdr_len;
      size_t len = static_cast<size_t>(n) - hdr_len;
      Ipv4View ip;
      DropReason reason;
      if (!ParseIpv4(pkt, len, &ip, &reason)) {
        counters_.Drop(reason);
        continue;
      }
      const Route* route = RouteTable::Lookup(*routes, ip.dst);
      if (!route) {
        counters_.Drop(kDropNoRoute);
        std::memset(icmp, 0, kHdr);
        size_t ilen = BuildNetUnreachable(pkt, ip.total_len, tun_ip_.load(std::memory_order_relaxed), icmp + kHdr, sizeof icmp - kHdr);
        iovec reply = {icmp, kHdr + ilen};
        if (ilen && WriteTun(q.tun_fd, &reply, 1)) counters_.icmp_unreachable_sent++;
        continue;
      }
      if (!DecrementTtl(pkt)) {
        counters_.Drop(kDropTtlExceeded);
        continue;
      }
      if (hdr.gso_type == kVnetGsoTcpV4) {
        SplitResult& split = slot.split;
        if (!SplitTcpV4(hdr, pkt, len, options_.mtu, slot.headers, &split)) {
          counters_.Drop(kDropBadGso);
          continue;
        }
        counters_.gso_splits.fetch_add(1, std::memory_order_relaxed);
        size_t per_send = kMaxGsoBytes / split.segment_size;
        if (per_send > kMaxGsoSegments) per_send = kMaxGsoSegments;
        if (per_send == 0) per_send = 1;
        size_t done = 0;
        while (done < split.count) {
          size_t segs = split.count - done < per_send ? split.count - done : per_send;
          size_t offset = done * split.segment_size;
          size_t bytes = done + segs == split.count ? split.total - offset : segs * split.segment_size;
          queue(&split.iov[2 * done], 2 * segs, bytes, split.segment_size, segs, route);
          done += segs;
        }
        continue;
      }
      if ((hdr.flags & kVnetNeedsCsum) && !CompleteChecksum(pkt, ip.total_len, hdr.csum_start, hdr.csum_offset)) {
        counters_.Drop(kDropBadGso);
        continue;
      }
      slot.split.iov[0] = {pkt, ip.total_len};
      queue(slot.split.iov, 1, ip.total_len, ip.total_len, 1, route);
    }

    int sent = 0;
    while (sent < queued) {
      int n = sendmmsg(q.udp_fd, batch->msgs + sent, static_cast<unsigned>(queued - sent), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {  // socket buffer full: wait for room rather than drop the burst
          pollfd p = {q.udp_fd, POLLOUT, 0};
          if (poll(&p, 1, 100) > 0) continue;
        }
        counters_.drops[kDropSendError].fetch_add(batch->segments[sent], std::memory_order_relaxed);
        sent++;  // this message is lost; keep the rest
        continue;
      }
      for (int i = sent; i < sent + n; i++) {
        counters_.tx_packets.fetch_add(batch->segments[i], std::memory_order_relaxed);
        counters_.queue_tx[q.index].fetch_add(batch->segments[i], std::memory_order_relaxed);
        counters_.tx_bytes.fetch_add(batch->bytes[i], std::memory_order_relaxed);
      }
      sent += n;
    }
  }
}

void Engine::UdpToTunLoop(Queue& q) {
  auto batch = std::make_unique<RxBatch>();
  auto coalescer = std::make_unique<TcpCoalescer>();
  uint8_t zero_hdr[kHdr] = {};
  auto emit = [&](iovec* iov, int iovcnt) {
    if (!WriteTun(q.tun_fd, iov, iovcnt)) {
      counters_.Drop(kDropTunWriteError);
      return;
    }
    if (coalescer->merged() > 1) counters_.gro_merges.fetch_add(1, std::memory_order_relaxed);
  };
  while (WaitReadable(q.udp_fd)) {
    batch->Reset(udp_gro_);
    int n = recvmmsg(q.udp_fd, batch->msgs, kRxBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) continue;
    RouteTable::Snapshot routes = routes_.Load();
    for (int i = 0; i < n; i++) {
      uint8_t* buf = batch->slots[i].buf;
      size_t total = batch->msgs[i].msg_len;
      size_t step = udp_gro_ ? GroSegmentSize(batch->msgs[i].msg_hdr) : 0;
      if (step == 0) step = total;
      uint32_t sender = ntohl(batch->addrs[i].sin_addr.s_addr);
      // With UDP_GRO one read may hold several datagrams of `step` bytes each (the last may be shorter).
      for (size_t off = 0; off < total; off += step) {
        uint8_t* pkt = buf + off;
        size_t len = total - off < step ? total - off : step;
        Ipv4View ip;
        DropReason reason;
        if (!ParseIpv4(pkt, len, &ip, &reason)) {
          counters_.Drop(reason);
          continue;
        }
        if (options_.anti_spoofing) {
          // The sender must be the host whose lease holds the inner source, or it could inject any address.
          const Route* owner = RouteTable::Lookup(*routes, ip.src);
          if (!owner) {
            counters_.Drop(kDropUnknownSource);
            continue;
          }
          if (owner->peer_ip != sender) {
            counters_.Drop(kDropSpoofedSource);
            continue;
          }
        }
        if (!DecrementTtl(pkt)) {
          counters_.Drop(kDropTtlExceeded);
          continue;
        }
        counters_.rx_packets.fetch_add(1, std::memory_order_relaxed);
        counters_.queue_rx[q.index].fetch_add(1, std::memory_order_relaxed);
        counters_.rx_bytes.fetch_add(ip.total_len, std::memory_order_relaxed);
        if (tun_offload_) {
          coalescer->Add(pkt, ip.total_len, emit);
        } else {
          iovec iov[2] = {{zero_hdr, kHdr}, {pkt, ip.total_len}};
          emit(iov, 2);
        }
      }
    }
    coalescer->Flush(emit);
  }
}

}  // namespace flannel
