#include "engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "sys_error.h"
#include "tun.h"

namespace flannel {

namespace {

// Packets handled per batched syscall. Large enough to amortise the syscall, small enough to stay in cache.
constexpr int kBatch = 64;
// Room for any IPv4 packet the TUN can hand us (its MTU is at most 65535).
constexpr size_t kBufSize = 65536;

struct Batch {
  std::vector<uint8_t> storage;
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_in addrs[kBatch];

  Batch() : storage(static_cast<size_t>(kBatch) * kBufSize) {
    std::memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < kBatch; i++) {
      iov[i].iov_base = buf(i);
      iov[i].iov_len = kBufSize;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    }
  }
  uint8_t* buf(int i) { return storage.data() + static_cast<size_t>(i) * kBufSize; }
};

}  // namespace

Engine::Engine(const EngineOptions& options) : options_(options), tun_ip_(options.tun_ip) {
  TunDevice tun = OpenTun(options.tun_name);
  tun_fd_ = tun.fd;
  tun_name_ = tun.name;
  try {
    udp_fd_ = OpenUdpSocket(options.local_ip, options.port);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw SysError("eventfd", errno);
  } catch (...) {
    Stop();
    throw;
  }
  tun_to_udp_ = std::thread(&Engine::TunToUdpLoop, this);
  udp_to_tun_ = std::thread(&Engine::UdpToTunLoop, this);
}

Engine::~Engine() { Stop(); }

void Engine::Stop() {
  if (!stopping_.exchange(true)) {
    if (wake_fd_ >= 0) {
      uint64_t one = 1;
      if (write(wake_fd_, &one, sizeof one) < 0) { /* threads also poll stopping_ with a timeout */ }
    }
  }
  if (tun_to_udp_.joinable()) tun_to_udp_.join();
  if (udp_to_tun_.joinable()) udp_to_tun_.join();
  for (int* fd : {&tun_fd_, &udp_fd_, &wake_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
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

void Engine::TunToUdpLoop() {
  auto batch = std::make_unique<Batch>();
  uint8_t icmp[576];
  while (WaitReadable(tun_fd_)) {
    RouteTable::Snapshot routes = routes_.Load();
    int queued = 0;
    // TUN has no batched read: drain up to a batch, then send it with one sendmmsg.
    for (int reads = 0; reads < kBatch; reads++) {
      uint8_t* buf = batch->buf(queued);
      ssize_t n = read(tun_fd_, buf, kBufSize);
      if (n < 0) break;  // EAGAIN: drained
      Ipv4View ip;
      DropReason reason;
      if (!ParseIpv4(buf, static_cast<size_t>(n), &ip, &reason)) {
        counters_.Drop(reason);
        continue;
      }
      const Route* route = RouteTable::Lookup(*routes, ip.dst);
      if (!route) {
        counters_.Drop(kDropNoRoute);
        size_t len = BuildNetUnreachable(buf, ip.total_len, tun_ip_.load(std::memory_order_relaxed), icmp, sizeof icmp);
        if (len && write(tun_fd_, icmp, len) == static_cast<ssize_t>(len)) counters_.icmp_unreachable_sent++;
        continue;
      }
      if (!DecrementTtl(buf)) {
        counters_.Drop(kDropTtlExceeded);
        continue;
      }
      sockaddr_in& to = batch->addrs[queued];
      to.sin_family = AF_INET;
      to.sin_port = htons(route->peer_port);
      to.sin_addr.s_addr = htonl(route->peer_ip);
      batch->iov[queued].iov_len = ip.total_len;
      batch->msgs[queued].msg_hdr.msg_namelen = sizeof to;
      queued++;
    }
    int sent = 0;
    while (sent < queued) {
      int n = sendmmsg(udp_fd_, batch->msgs + sent, static_cast<unsigned>(queued - sent), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {  // socket buffer full: wait for room rather than drop the burst
          pollfd p = {udp_fd_, POLLOUT, 0};
          if (poll(&p, 1, 100) > 0) continue;
        }
        counters_.Drop(kDropSendError);  // this datagram is lost; keep the rest
        sent++;
        continue;
      }
      for (int i = sent; i < sent + n; i++) {
        counters_.tx_packets.fetch_add(1, std::memory_order_relaxed);
        counters_.tx_bytes.fetch_add(batch->iov[i].iov_len, std::memory_order_relaxed);
      }
      sent += n;
    }
    for (int i = 0; i < queued; i++) batch->iov[i].iov_len = kBufSize;
  }
}

void Engine::UdpToTunLoop() {
  auto batch = std::make_unique<Batch>();
  while (WaitReadable(udp_fd_)) {
    for (int i = 0; i < kBatch; i++) batch->msgs[i].msg_hdr.msg_namelen = sizeof batch->addrs[i];
    int n = recvmmsg(udp_fd_, batch->msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) continue;
    RouteTable::Snapshot routes = routes_.Load();
    for (int i = 0; i < n; i++) {
      uint8_t* buf = batch->buf(i);
      size_t len = batch->msgs[i].msg_len;
      Ipv4View ip;
      DropReason reason;
      if (!ParseIpv4(buf, len, &ip, &reason)) {
        counters_.Drop(reason);
        continue;
      }
      if (options_.anti_spoofing) {
        // The sender must be the host whose lease holds the inner source, or it could inject any address.
        uint32_t sender = ntohl(batch->addrs[i].sin_addr.s_addr);
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
      if (!DecrementTtl(buf)) {
        counters_.Drop(kDropTtlExceeded);
        continue;
      }
      if (write(tun_fd_, buf, ip.total_len) != static_cast<ssize_t>(ip.total_len)) {
        counters_.Drop(kDropTunWriteError);
        continue;
      }
      counters_.rx_packets.fetch_add(1, std::memory_order_relaxed);
      counters_.rx_bytes.fetch_add(ip.total_len, std::memory_order_relaxed);
    }
  }
}

}  // namespace flannel
