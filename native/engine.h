// The forwarding engine: per queue, two threads moving packets between a TUN queue and a UDP socket, in batches.
// Wire format is flannel's udp backend: each datagram is exactly one IPv4 packet, nothing else. What becomes of
// each packet is decided in forward.h; this is the I/O around it.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "packet.h"
#include "route_table.h"

namespace flannel {

// Every field is set by the caller: the defaults live with the flags, in TypeScript, and nowhere else.
struct EngineOptions {
  std::string tun_name;
  uint32_t local_ip;  // host order; the UDP socket binds here
  uint16_t port;
  uint32_t tun_ip;  // source of the ICMP errors we write back into the TUN
  size_t mtu;
  bool anti_spoofing;
  // TSO/GRO: TUN with virtio_net_hdr + TUNSETOFFLOAD, UDP_SEGMENT sends and UDP_GRO receives.
  bool offload;
  // TUN queues (IFF_MULTI_QUEUE) and UDP sockets (SO_REUSEPORT), one pair per queue, each pair served by its own
  // two threads. A flow stays on one queue in each direction, so packets of a flow are never reordered.
  size_t queues;
};

constexpr size_t kMaxQueues = 16;

struct Counters {
  std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, rx_packets{0}, rx_bytes{0};
  std::atomic<uint64_t> icmp_unreachable_sent{0};
  // Super packets split into datagrams (TUN side) and TUN writes that merged several datagrams (GRO side).
  std::atomic<uint64_t> gso_splits{0}, gro_merges{0};
  // TUN reads and recvmmsg calls that failed with a transient error (no datagram is lost to one).
  std::atomic<uint64_t> read_errors{0};
  std::atomic<uint64_t> drops[kDropCount] = {};
  // Datagrams sent and received per queue: how the kernel spread flows over the queues.
  std::atomic<uint64_t> queue_tx[kMaxQueues] = {}, queue_rx[kMaxQueues] = {};
  void Drop(DropReason r, uint64_t n = 1) { drops[r].fetch_add(n, std::memory_order_relaxed); }
};

// The first persistent error a packet thread hit. After it every thread of the engine has stopped (or is about
// to); counters and routes stay readable until Stop().
struct Failure {
  std::string syscall;  // "read" or "writev" (the TUN), "recvmmsg" or "sendmmsg" (the socket), "poll"
  int err;
  uint32_t queue;
  std::string message;  // e.g. "read(TUN flannel0, queue 0) failed: EBADFD (File descriptor in bad state)"
};

class Engine {
 public:
  explicit Engine(const EngineOptions& options);  // opens the TUN and socket, starts the threads
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::string& tun_name() const { return tun_name_; }
  // What the kernel granted: each may be off even when asked for (old kernels), and we fall back cleanly.
  bool tun_offload() const { return tun_offload_; }
  bool udp_gro() const { return udp_gro_; }
  RouteTable& routes() { return routes_; }
  uint32_t queue_count() const { return static_cast<uint32_t>(queues_.size()); }
  const Counters& counters() const { return counters_; }
  // Empty while every thread runs.
  std::optional<Failure> failure() const;

  // Stops and joins the threads and closes the descriptors; the TUN device disappears with its fd. Idempotent.
  void Stop();

 private:
  // One TUN queue and the UDP socket paired with it; the socket's datagrams are written back to this queue, so the
  // kernel sends a flow's replies to the queue its packets came from.
  struct Queue {
    uint32_t index = 0;
    int tun_fd = -1;
    int udp_fd = -1;
    std::string tun_label, udp_label;  // how failure messages name the two descriptors
    std::thread tun_to_udp;
    std::thread udp_to_tun;
  };
  struct TxBatch;
  enum class Ready { kData, kError, kStop };

  void OpenQueues();
  void TunToUdpLoop(Queue& q);
  void UdpToTunLoop(Queue& q);
  // Sends the first `queued` messages of the batch; false once the socket failed for good.
  bool SendBatch(Queue& q, TxBatch& batch, int queued);
  // kError: poll reported POLLERR/POLLHUP/POLLNVAL, which the next read on fd must turn into an errno.
  Ready Wait(Queue& q, int fd);
  // Sleeps 1, 2, 4 ... 128 ms as `streak` grows, or until Stop: a transient error that repeats must not spin.
  void Pause(unsigned& streak);
  // 0, or the errno of the failed write.
  int WriteTun(int tun_fd, iovec* iov, int iovcnt);
  // Records the first failure and stops every thread. Returns false, for `return Fail(...)` in bool functions.
  bool Fail(const char* syscall, int err, const Queue& q, const std::string& label);
  void RequestStop();

  EngineOptions options_;
  std::string tun_name_;
  bool vnet_hdr_ = false;
  bool tun_offload_ = false;
  bool udp_gro_ = false;
  std::vector<Queue> queues_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  mutable std::mutex failure_mutex_;
  std::optional<Failure> failure_;
  RouteTable routes_;
  Counters counters_;
};

}  // namespace flannel
