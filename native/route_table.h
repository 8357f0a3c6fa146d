// Peer routes: remote lease subnet -> the peer's underlay address and port. TypeScript owns the truth and
// pushes changes; packet threads read an immutable snapshot swapped in atomically, so a route update never
// blocks or tears a lookup in progress.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace flannel {

struct Route {
  uint32_t net;   // host byte order, masked
  uint32_t mask;
  uint8_t prefix_len;
  uint32_t peer_ip;
  uint16_t peer_port;
};

// The netmask of a prefix length 0..32, in host order (a shift by 32 would be undefined).
inline uint32_t PrefixMask(uint8_t prefix_len) { return prefix_len == 0 ? 0 : 0xffffffffu << (32 - prefix_len); }

// The route for net/prefix_len (any host bits of net are cleared), prefix_len 0..32.
inline Route MakeRoute(uint32_t net, uint8_t prefix_len, uint32_t peer_ip, uint16_t peer_port) {
  uint32_t mask = PrefixMask(prefix_len);
  return Route{net & mask, mask, prefix_len, peer_ip, peer_port};
}

class RouteTable {
 public:
  using Snapshot = std::shared_ptr<const std::vector<Route>>;

  RouteTable() : routes_(std::make_shared<const std::vector<Route>>()) {}

  void Set(const Route& route) {
    Update([&](std::vector<Route>& v) {
      Erase(v, route.net, route.prefix_len);
      v.push_back(route);
      // Longest prefix first, so the first match is the most specific.
      std::stable_sort(v.begin(), v.end(), [](const Route& a, const Route& b) { return a.prefix_len > b.prefix_len; });
    });
  }

  // Removes the route for net/prefix_len (host bits of net are ignored), if there is one.
  void Delete(uint32_t net, uint8_t prefix_len) {
    Update([&](std::vector<Route>& v) { Erase(v, net & PrefixMask(prefix_len), prefix_len); });
  }

  Snapshot Load() const { return std::atomic_load_explicit(&routes_, std::memory_order_acquire); }

  static const Route* Lookup(const std::vector<Route>& routes, uint32_t ip) {
    for (const Route& r : routes)
      if ((ip & r.mask) == r.net) return &r;
    return nullptr;
  }

 private:
  template <typename F>
  void Update(F&& edit) {
    std::lock_guard<std::mutex> lock(writer_);
    auto next = std::make_shared<std::vector<Route>>(*Load());
    edit(*next);
    std::atomic_store_explicit(&routes_, Snapshot(std::move(next)), std::memory_order_release);
  }

  static void Erase(std::vector<Route>& v, uint32_t net, uint8_t prefix_len) {
    v.erase(std::remove_if(v.begin(), v.end(),
                           [&](const Route& r) { return r.net == net && r.prefix_len == prefix_len; }),
            v.end());
  }

  std::mutex writer_;
  Snapshot routes_;
};

}  // namespace flannel
