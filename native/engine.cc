#include "engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "forward.h"
#include "io_fault.h"
#include "offload.h"
#include "sys_error.h"
#include "tun.h"

namespace flannel {

namespace {

// TUN reads per wakeup (each may be a 64 KiB super packet) and datagram batches per recvmmsg.
constexpr int kTunBatch = 32;
constexpr int kRxBatch = 16;
constexpr size_t kHdr = sizeof(VnetHdr);
// One UDP_SEGMENT send must stay under the 64 KiB IP datagram limit, and under the kernel's segment cap.
constexpr size_t kMaxGsoBytes = 60000;
constexpr size_t kMaxGsoSegments = 64;
// Up to this many messages can come from one TUN read (a split that exceeds one UDP_SEGMENT send).
constexpr int kMsgsPerRead = 3;

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

std::string Ipv4Text(uint32_t ip) {
  in_addr a{htonl(ip)};
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

}  // namespace

struct Engine::TxBatch {
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

  // Puts one datagram, or a UDP_SEGMENT batch of `count` of them gathered from `iov`, at index i; returns i + 1.
  int Push(int i, iovec* iov, size_t iovcnt, size_t total, size_t segment_size, size_t count, const Route& route) {
    sockaddr_in& to = addrs[i];
    to.sin_family = AF_INET;
    to.sin_port = htons(route.peer_port);
    to.sin_addr.s_addr = htonl(route.peer_ip);
    msghdr& m = msgs[i].msg_hdr;
    std::memset(&m, 0, sizeof m);
    m.msg_name = &to;
    m.msg_namelen = sizeof to;
    m.msg_iov = iov;
    m.msg_iovlen = iovcnt;
    segments[i] = count;
    bytes[i] = total;
    if (count > 1) {
      // UDP GSO only batches the syscall: the kernel cuts this into `count` ordinary datagrams.
      m.msg_control = ctrl[i];
      m.msg_controllen = sizeof ctrl[i];
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = IPPROTO_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t size = static_cast<uint16_t>(segment_size);
      std::memcpy(CMSG_DATA(c), &size, sizeof size);
    }
    return i + 1;
  }

  // Puts the datagrams of one decided packet from index `queued` on, in as few UDP_SEGMENT sends as the kernel's
  // limits allow; returns the new count of queued messages.
  int PushSplit(int queued, SplitResult& split, const Route& route) {
    size_t per_send = std::max<size_t>(1, std::min(kMaxGsoBytes / split.segment_size, kMaxGsoSegments));
    for (size_t done = 0; done < split.count;) {
      size_t segs = std::min(split.count - done, per_send);
      size_t offset = done * split.segment_size;
      size_t bytes = done + segs == split.count ? split.total - offset : segs * split.segment_size;
      queued = Push(queued, &split.iov[2 * done], 2 * segs, bytes, split.segment_size, segs, route);
      done += segs;
    }
    return queued;
  }
};

Engine::Engine(const EngineOptions& options) : options_(options) {
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
  // A SO_REUSEPORT bind succeeds next to any socket that has the option too, and the TUN opens a further queue on a
  // multi-queue device someone else holds: a second engine on our port would silently take a share of our traffic.
  // So claim the port without SO_REUSEPORT first; that bind fails with EADDRINUSE while anyone holds it.
  if (multi) close(OpenUdpSocket(options_.local_ip, options_.port, false));
  queues_.reserve(options_.queues);  // threads keep references to their Queue: no reallocation after this
  for (size_t i = 0; i < options_.queues; i++) {
    queues_.emplace_back();
    Queue& q = queues_.back();
    q.index = static_cast<uint32_t>(i);
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
    const std::string queue = ", queue " + std::to_string(i);
    q.tun_label = "TUN " + tun_name_ + queue;
    q.udp_label = "UDP " + Ipv4Text(options_.local_ip) + ":" + std::to_string(options_.port) + queue;
  }
  if (multi) SteerByInnerFlow(queues_[0].udp_fd, queues_.size());
}

Engine::~Engine() { Stop(); }

void Engine::RequestStop() {
  if (!stopping_.exchange(true) && wake_fd_ >= 0) {
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) { /* threads also poll stopping_ with a timeout */ }
  }
}

void Engine::Stop() {
  RequestStop();
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

std::optional<Failure> Engine::failure() const {
  std::lock_guard<std::mutex> lock(failure_mutex_);
  return failure_;
}

bool Engine::Fail(const char* syscall, int err, const Queue& q, const std::string& label) {
  {
    std::lock_guard<std::mutex> lock(failure_mutex_);
    if (!failure_) failure_ = Failure{syscall, err, q.index, SysErrorMessage(std::string(syscall) + "(" + label + ")", err)};
  }
  RequestStop();
  return false;
}

Engine::Ready Engine::Wait(Queue& q, int fd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stopping_.load(std::memory_order_relaxed)) {
    int n = poll(fds, 2, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail("poll", errno, q, fd == q.tun_fd ? q.tun_label : q.udp_label);
      return Ready::kStop;
    }
    if (fds[1].revents) return Ready::kStop;
    if (n > 0 && fds[0].revents) return fds[0].revents & (POLLERR | POLLHUP | POLLNVAL) ? Ready::kError : Ready::kData;
  }
  return Ready::kStop;
}

void Engine::Pause(unsigned& streak) {
  pollfd p = {wake_fd_, POLLIN, 0};
  poll(&p, 1, 1 << std::min(streak, 7u));
  streak++;
}

// One TUN write gathered from iov; iov[0] starts with kHdr bytes of virtio_net_hdr, which reach the TUN only when
// it was opened with one. iov is left as it was given.
int Engine::WriteTun(int tun_fd, iovec* iov, int iovcnt) {
  iovec first = iov[0];
  if (!vnet_hdr_) {
    iov[0].iov_base = static_cast<uint8_t*>(iov[0].iov_base) + kHdr;
    iov[0].iov_len -= kHdr;
  }
  int err = 0;
  while (writev(tun_fd, iov, iovcnt) < 0 && (err = errno) == EINTR) err = 0;
  iov[0] = first;
  return err;
}

void Engine::TunToUdpLoop(Queue& q) {
  auto batch = std::make_unique<TxBatch>();
  uint8_t icmp[kHdr + kIcmpReplyMax] = {};  // a zero virtio_net_hdr, then the ICMP error
  const size_t hdr_len = vnet_hdr_ ? kHdr : 0;
  const EgressConfig config{options_.tun_ip, options_.mtu};
  unsigned streak = 0;
  for (Ready ready; (ready = Wait(q, q.tun_fd)) != Ready::kStop;) {
    RouteTable::Snapshot routes = routes_.Load();
    int queued = 0;
    int reads = 0;
    bool troubled = false;  // nothing was read although poll woke us for it
    while (reads < kTunBatch) {
      TxBatch::Slot& slot = batch->slots[reads];
      ssize_t n = read(q.tun_fd, slot.in, sizeof slot.in);
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) {
          troubled = reads == 0 && ready == Ready::kError;
          break;
        }
        if (TunErrorIsPersistent(err)) {
          Fail("read", err, q, q.tun_label);
          return;
        }
        counters_.read_errors.fetch_add(1, std::memory_order_relaxed);
        troubled = true;
        break;
      }
      reads++;
      VnetHdr hdr{};
      size_t got = static_cast<size_t>(n);
      if (vnet_hdr_ && got >= kHdr) std::memcpy(&hdr, slot.in, kHdr);
      Egress e = DecideEgress(hdr, slot.in + hdr_len, got >= hdr_len ? got - hdr_len : 0, *routes, config, slot.headers,
                              &slot.split, icmp + kHdr);
      if (!e.send) {
        counters_.Drop(e.drop);
        if (e.icmp_len == 0) continue;
        iovec reply = {icmp, kHdr + e.icmp_len};
        int err = WriteTun(q.tun_fd, &reply, 1);
        if (err == 0) {
          counters_.icmp_unreachable_sent.fetch_add(1, std::memory_order_relaxed);
        } else if (TunErrorIsPersistent(err)) {
          Fail("writev", err, q, q.tun_label);
          return;
        }
        continue;
      }
      if (e.split) counters_.gso_splits.fetch_add(1, std::memory_order_relaxed);
      queued = batch->PushSplit(queued, slot.split, *e.route);
    }
    if (!SendBatch(q, *batch, queued)) return;
    if (troubled) {
      Pause(streak);
    } else {
      streak = 0;
    }
  }
}

bool Engine::SendBatch(Queue& q, TxBatch& batch, int queued) {
  int sent = 0;
  while (sent < queued) {
    int n = sendmmsg(q.udp_fd, batch.msgs + sent, static_cast<unsigned>(queued - sent), 0);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN) {  // socket buffer full: wait for room rather than drop the burst
        pollfd p[2] = {{q.udp_fd, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
        if (poll(p, 2, 100) > 0 && !p[1].revents && p[0].revents == POLLOUT) continue;
      } else if (SocketErrorIsPersistent(err)) {
        return Fail("sendmmsg", err, q, q.udp_label);
      }
      counters_.Drop(kDropSendError, batch.segments[sent]);
      sent++;  // this message is lost; keep the rest
      continue;
    }
    for (int i = sent; i < sent + n; i++) {
      counters_.tx_packets.fetch_add(batch.segments[i], std::memory_order_relaxed);
      counters_.queue_tx[q.index].fetch_add(batch.segments[i], std::memory_order_relaxed);
      counters_.tx_bytes.fetch_add(batch.bytes[i], std::memory_order_relaxed);
    }
    sent += n;
  }
  return true;
}

void Engine::UdpToTunLoop(Queue& q) {
  auto batch = std::make_unique<RxBatch>();
  auto coalescer = std::make_unique<TcpCoalescer>();
  uint8_t zero_hdr[kHdr] = {};
  bool failed = false;
  // Every datagram ends in exactly one counter: rx when its TUN write succeeded, else one drop reason.
  auto deliver = [&](iovec* iov, int iovcnt, size_t packets, size_t bytes) {
    int err = failed ? EBADFD : WriteTun(q.tun_fd, iov, iovcnt);
    if (err != 0) {
      if (!failed && TunErrorIsPersistent(err)) {
        Fail("writev", err, q, q.tun_label);
        failed = true;  // the rest of this batch is counted as lost, without more writes
      }
      counters_.Drop(kDropTunWriteError, packets);
      return;
    }
    counters_.rx_packets.fetch_add(packets, std::memory_order_relaxed);
    counters_.queue_rx[q.index].fetch_add(packets, std::memory_order_relaxed);
    counters_.rx_bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (packets > 1) counters_.gro_merges.fetch_add(1, std::memory_order_relaxed);
  };
  auto emit = [&](iovec* iov, int iovcnt) { deliver(iov, iovcnt, coalescer->merged(), coalescer->merged_bytes()); };
  unsigned streak = 0;
  for (Ready ready; !failed && (ready = Wait(q, q.udp_fd)) != Ready::kStop;) {
    batch->Reset(udp_gro_);
    int n = recvmmsg(q.udp_fd, batch->msgs, kRxBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN && ready == Ready::kData) continue;
      if (err != EAGAIN && SocketErrorIsPersistent(err)) {
        Fail("recvmmsg", err, q, q.udp_label);
        return;
      }
      // A transient error (reported once, e.g. for an ICMP message), or poll reported an error nothing explains.
      counters_.read_errors.fetch_add(1, std::memory_order_relaxed);
      Pause(streak);
      continue;
    }
    streak = 0;
    RouteTable::Snapshot routes = routes_.Load();
    for (int i = 0; i < n; i++) {
      uint8_t* buf = batch->slots[i].buf;
      size_t total = batch->msgs[i].msg_len;
      size_t step = udp_gro_ ? GroSegmentSize(batch->msgs[i].msg_hdr) : 0;
      if (step == 0 || step > total) step = total;
      uint32_t sender = ntohl(batch->addrs[i].sin_addr.s_addr);
      // With UDP_GRO one read may hold several datagrams of `step` bytes each (the last may be shorter); an empty
      // datagram is still one datagram.
      size_t count = total == 0 ? 1 : (total + step - 1) / step;
      for (size_t k = 0; k < count; k++) {
        uint8_t* pkt = buf + k * step;
        size_t len = std::min(step, total - k * step);
        Ingress in = DecideIngress(pkt, len, sender, *routes, options_.anti_spoofing);
        if (!in.deliver) {
          counters_.Drop(in.drop);
        } else if (tun_offload_) {
          coalescer->Add(pkt, in.len, emit);
        } else {
          iovec iov[2] = {{zero_hdr, kHdr}, {pkt, in.len}};
          deliver(iov, 2, 1, in.len);
        }
      }
    }
    coalescer->Flush(emit);
  }
}

}  // namespace flannel
