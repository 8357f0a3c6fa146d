// The udp backend's fast path: loads the tc programs of native/bpf/flannel_udp.bpf.c with libbpf, attaches them
// (tc egress on flannel0, tc ingress on the external interface), and gives access to their maps. The native
// engine keeps running beside it and handles whatever the programs pass up (see flannel_udp.bpf.c).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bpf/flannel_udp.h"
#include "route_table.h"

struct bpf_object;

namespace flannel {

// Why the fast path cannot run: the object is missing or unreadable, the kernel refused a program or a map, or a
// program could not be attached. The message is one line and says which.
class FastPathError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class AttachMode {
  kAuto,  // tcx links where the kernel has them (6.6+), else clsact filters
  kTcx,   // links owned by this process: the kernel detaches them when it exits, even by a crash
  kTc,    // clsact filters with our handle and priority, replaced at start and removed at close
};

// Every field is set by the caller: the defaults live with the flags, in TypeScript, and nowhere else.
struct FastPathConfig {
  uint32_t ext_ifindex;
  uint32_t tun_ifindex;
  uint32_t local_ip;  // host order
  uint16_t port;
  bool anti_spoofing;
};

class FastPath {
 public:
  // Opens the object file and loads its programs and maps into the kernel (the verifier runs here). Nothing is
  // attached yet. Throws FastPathError.
  FastPath(const std::string& object_path, AttachMode mode);
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  // Writes the settings and attaches both programs; on failure nothing stays attached. Throws FastPathError.
  void Start(const FastPathConfig& config);

  void SetRoute(const Route& route, bool peer_fastpath);
  void DeleteRoute(uint32_t subnet, uint8_t prefix_len);
  // Sums of the per-CPU counters, indexed by fp_counter.
  std::vector<uint64_t> Counters() const;
  // "tcx" or "tc" once started, else "".
  const char* attach_mode() const;

  // Detaches the programs and releases the object. Idempotent.
  void Close();

  // Removes clsact filters that a crashed flanneld left on ifindex (ours are known by handle and priority).
  // Links (tcx) cannot be left behind. Returns how many were removed.
  static int RemoveLeftovers(uint32_t ifindex);

 private:
  struct Attachment {
    uint32_t ifindex = 0;
    bool ingress = false;
    int link_fd = -1;     // tcx
    bool tc_filter = false;  // clsact
  };

  Attachment Attach(int prog_fd, uint32_t ifindex, bool ingress);
  void Detach(Attachment& a);
  int MapFd(const char* name) const;

  bpf_object* obj_ = nullptr;
  AttachMode mode_;
  int egress_fd_ = -1, ingress_fd_ = -1;
  int config_fd_ = -1, routes_fd_ = -1, counters_fd_ = -1;
  std::vector<Attachment> attached_;
};

// Counter names as /metrics shows them, indexed by fp_counter.
extern const char* const kFastPathCounterNames[FP_COUNTER_COUNT];

}  // namespace flannel
