// The forwarding engine: per queue, two threads moving packets between a TUN queue and a UDP socket, in batches.
// Wire format is flannel's udp backend: each datagram is exactly one IPv4 packet, nothing else.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "packet.h"
#include "route_table.h"

namespace flannel {

struct EngineOptions {
  std::string tun_name = "flannel0";
  uint32_t local_ip = 0;  // host order; the UDP socket binds here
  uint16_t port = 8285;
  uint32_t tun_ip = 0;  // source of the ICMP errors we write back into the TUN
  size_t mtu = 1472;
  bool anti_spoofing = true;
  // TSO/GRO: TUN with virtio_net_hdr + TUNSETOFFLOAD, UDP_SEGMENT sends and UDP_GRO receives.
  bool offload = true;
  // TUN queues (IFF_MULTI_QUEUE) and UDP sockets (SO_REUSEPORT), one pair per queue, each pair served by its own
  // two threads. A flow stays on one queue in each direction, so packets of a flow are never reordered.
  size_t queues = 1;
};

constexpr size_t kMaxQueues = 16;

struct Counters {
  std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, rx_packets{0}, rx_bytes{0};
  std::atomic<uint64_t> icmp_unreachable_sent{0};
  // Super packets split into datagrams (TUN side) and TUN writes that merged several datagrams (GRO side).
  std::atomic<uint64_t> gso_splits{0}, gro_merges{0};
  std::atomic<uint64_t> drops[kDropCount] = {};
  // Datagrams sent and received per queue: how the kernel spread flows over the queues.
  std::atomic<uint64_t> queue_tx[kMaxQueues] = {}, queue_rx[kMaxQueues] = {};
  void Drop(DropReason r) { drops[r].fetch_add(1, std::memory_order_relaxed); }
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
  void set_tun_ip(uint32_t ip) { tun_ip_.store(ip, std::memory_order_relaxed); }

  // Stops and joins the threads and closes the descriptors; the TUN device disappears with its fd. Idempotent.
  void Stop();

 private:
  // One TUN queue and the UDP socket paired with it; the socket's datagrams are written back to this queue, so the
  // kernel sends a flow's replies to the queue its packets came from.
  struct Queue {
    size_t index = 0;
    int tun_fd = -1;
    int udp_fd = -1;
    std::thread tun_to_udp;
    std::thread udp_to_tun;
  };

  void OpenQueues();
  void TunToUdpLoop(Queue& q);
  void UdpToTunLoop(Queue& q);
  bool WaitReadable(int fd);
  bool WriteTun(int tun_fd, iovec* iov, int iovcnt);

  EngineOptions options_;
  std::string tun_name_;
  bool vnet_hdr_ = false;
  bool tun_offload_ = false;
  bool udp_gro_ = false;
  std::vector<Queue> queues_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> tun_ip_{0};
  RouteTable routes_;
  Counters counters_;
};

}  // namespace flannel
