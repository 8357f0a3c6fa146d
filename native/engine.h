// The forwarding engine: two threads moving packets between the TUN device and the UDP socket, in batches.
// Wire format is flannel's udp backend: each datagram is exactly one IPv4 packet, nothing else.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

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
};

struct Counters {
  std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, rx_packets{0}, rx_bytes{0};
  std::atomic<uint64_t> icmp_unreachable_sent{0};
  // Super packets split into datagrams (TUN side) and TUN writes that merged several datagrams (GRO side).
  std::atomic<uint64_t> gso_splits{0}, gro_merges{0};
  std::atomic<uint64_t> drops[kDropCount] = {};
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
  const Counters& counters() const { return counters_; }
  void set_tun_ip(uint32_t ip) { tun_ip_.store(ip, std::memory_order_relaxed); }

  // Stops and joins the threads and closes the descriptors; the TUN device disappears with its fd. Idempotent.
  void Stop();

 private:
  void TunToUdpLoop();
  void UdpToTunLoop();
  bool WaitReadable(int fd);
  bool WriteTun(iovec* iov, int iovcnt);

  EngineOptions options_;
  std::string tun_name_;
  bool vnet_hdr_ = false;
  bool tun_offload_ = false;
  bool udp_gro_ = false;
  int tun_fd_ = -1;
  int udp_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> tun_ip_{0};
  RouteTable routes_;
  Counters counters_;
  std::thread tun_to_udp_;
  std::thread udp_to_tun_;
};

}  // namespace flannel
