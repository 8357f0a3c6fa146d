#include "fastpath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <algorithm>
#include <cstring>
#include <deque>

#include "sys_error.h"

namespace flannel {

const char* const kFastPathCounterNames[FP_COUNTER_COUNT] = {
    "txPackets", "txBytes", "rxPackets", "rxBytes", "txSuperPackets", "rxSuperPackets",
    "ttl_exceeded", "spoofed_source", "unknown_source", "encap_failed",
    "no_route", "plain_peer", "unusual", "too_big", "helper_failed",
};

namespace {

// tcx attach types (Linux 6.6); named here because the installed uapi headers may be older than the kernel.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;
// How our clsact filters are known: one handle and priority ("8285"), on flannel0 egress and the external ingress.
constexpr uint32_t kTcHandle = 0x8285;
constexpr uint32_t kTcPriority = 0x8285;

// libbpf reports through a global print callback; while a load runs we keep its lines, which carry the verifier's
// verdict, for the error message.
std::deque<std::string>* g_log = nullptr;

int CaptureLog(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!g_log || level == LIBBPF_DEBUG) return 0;
  char text[4096];
  int n = vsnprintf(text, sizeof text, fmt, args);
  if (n <= 0) return 0;
  std::string all(text, std::min<size_t>(static_cast<size_t>(n), sizeof text - 1));
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::string line = all.substr(start, end - start);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (!line.empty()) g_log->push_back(line);
    if (g_log->size() > 256) g_log->pop_front();
    start = end + 1;
  }
  return 0;
}

// The verifier's last word on the program it refused (the line before libbpf's "-- END PROG LOAD LOG --", skipping
// its statistics), e.g. "invalid access to packet, off=0 size=4, R1(id=0,off=0,r=0)"; else libbpf's last line.
std::string VerifierVerdict(const std::deque<std::string>& log) {
  for (size_t i = log.size(); i-- > 0;) {
    if (log[i].find("-- END PROG LOAD LOG --") == std::string::npos) continue;
    for (size_t j = i; j-- > 0;) {
      const std::string& l = log[j];
      if (l.find("BEGIN PROG LOAD LOG") != std::string::npos) break;
      if (l.rfind("processed ", 0) == 0 || l.rfind("verification time", 0) == 0 || l.rfind("stack depth", 0) == 0) continue;
      return l;
    }
  }
  return log.empty() ? "" : log.back();
}

// libbpf's default prints to stderr, which would put raw kernel messages (e.g. "Parent Qdisc doesn't exists" when
// looking for leftovers on a device without clsact) into flanneld's log; our errors carry what matters.
void QuietLibbpf() {
  static bool done = false;
  if (!done) libbpf_set_print(CaptureLog);
  done = true;
}

std::string ErrnoText(int err) {
  if (err < 0) err = -err;
  char buf[128];
  libbpf_strerror(err, buf, sizeof buf);
  return buf;
}

std::string IfName(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(ifindex, name)) return name;
  return "ifindex " + std::to_string(ifindex);
}

bpf_tc_hook TcHook(uint32_t ifindex, bool ingress) {
  bpf_tc_hook hook;
  std::memset(&hook, 0, sizeof hook);
  hook.sz = sizeof hook;
  hook.ifindex = static_cast<int>(ifindex);
  hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  return hook;
}

bpf_tc_opts TcOpts(int prog_fd, uint32_t flags) {
  bpf_tc_opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  opts.prog_fd = prog_fd;
  opts.flags = flags;
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  return opts;
}

// Removes our clsact filter (known by handle and priority) from one hook; libbpf's result (0, or -errno).
int DetachTcFilter(uint32_t ifindex, bool ingress) {
  bpf_tc_hook hook = TcHook(ifindex, ingress);
  bpf_tc_opts opts = TcOpts(0, 0);
  return bpf_tc_detach(&hook, &opts);
}

}  // namespace

FastPath::FastPath(const std::string& object_path, AttachMode mode) : mode_(mode) {
  QuietLibbpf();
  std::deque<std::string> log;
  g_log = &log;
  obj_ = bpf_object__open_file(object_path.c_str(), nullptr);
  if (!obj_) {
    int err = errno;
    g_log = nullptr;
    // A plain errno says it best (ENOENT: not built); libbpf's own codes (4000 and up) are explained in its log.
    std::string said = err < 4000 || log.empty() ? ErrnoText(err) : log.back();
    if (said.rfind("libbpf: ", 0) == 0) said.erase(0, 8);
    throw FastPathError("cannot open BPF object " + object_path + ": " + said);
  }
  int err = bpf_object__load(obj_);
  if (err) {
    g_log = nullptr;
    Close();
    // The verifier's last word says more than the errno it maps to.
    std::string verdict = VerifierVerdict(log);
    // libbpf's own error numbers (4000 and up) are no errno: they stay in the message only.
    if (-err > 0 && -err < 4000)
      throw SysError("bpf(BPF_PROG_LOAD)", -err, "loading the fast path's BPF programs (" + verdict + ")");
    throw FastPathError("loading the fast path's BPF programs failed: " + verdict + " (" + ErrnoText(err) + ")");
  }
  g_log = nullptr;

  auto prog = [&](const char* name) {
    bpf_program* p = bpf_object__find_program_by_name(obj_, name);
    int fd = p ? bpf_program__fd(p) : -1;
    if (fd < 0) {
      Close();
      throw FastPathError(std::string("BPF object ") + object_path + " has no program " + name);
    }
    return fd;
  };
  egress_fd_ = prog("flannel_egress");
  ingress_fd_ = prog("flannel_ingress");
  config_fd_ = MapFd("config");
  routes_fd_ = MapFd("routes");
  counters_fd_ = MapFd("counters");
  if (config_fd_ < 0 || routes_fd_ < 0 || counters_fd_ < 0) {
    Close();
    throw FastPathError("BPF object " + object_path + " lacks the config, routes or counters map");
  }
}

FastPath::~FastPath() { Close(); }

int FastPath::MapFd(const char* name) const { return bpf_object__find_map_fd_by_name(obj_, name); }

void FastPath::Start(const FastPathConfig& c) {
  if (!obj_) throw FastPathError("fast path is closed");
  if (!attached_.empty()) throw FastPathError("fast path already started");
  fp_config cfg{};
  cfg.local_ip = htonl(c.local_ip);
  cfg.ext_ifindex = c.ext_ifindex;
  cfg.tun_ifindex = c.tun_ifindex;
  cfg.port = htons(c.port);
  cfg.anti_spoofing = c.anti_spoofing ? 1 : 0;
  uint32_t zero = 0;
  if (bpf_map_update_elem(config_fd_, &zero, &cfg, BPF_ANY))
    throw SysError("bpf(BPF_MAP_UPDATE_ELEM)", errno, "writing the fast path's settings");
  try {
    // Both or neither: peers are told we decapsulate, and sending in the kernel without receiving there is no mode.
    attached_.push_back(Attach(egress_fd_, c.tun_ifindex, false));
    attached_.push_back(Attach(ingress_fd_, c.ext_ifindex, true));
  } catch (...) {
    for (Attachment& a : attached_) Detach(a);
    attached_.clear();
    throw;
  }
}

FastPath::Attachment FastPath::Attach(int prog_fd, uint32_t ifindex, bool ingress) {
  Attachment a;
  a.ifindex = ifindex;
  a.ingress = ingress;
  const std::string where = IfName(ifindex) + (ingress ? " ingress" : " egress");
  if (mode_ != AttachMode::kTc) {
    int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex),
                             static_cast<bpf_attach_type>(ingress ? kTcxIngress : kTcxEgress), nullptr);
    if (fd >= 0) {
      a.link_fd = fd;
      return a;
    }
    int err = errno;
    // An older kernel does not know the attach type (EINVAL); anything else is a real failure.
    if (mode_ == AttachMode::kTcx || err != EINVAL)
      throw SysError("bpf(BPF_LINK_CREATE)", err, "attaching the fast path to " + where + " (tcx)");
  }
  bpf_tc_hook hook = TcHook(ifindex, ingress);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) throw SysError("rtnetlink(RTM_NEWQDISC)", -err, "adding a clsact qdisc to " + IfName(ifindex));
  // REPLACE: a filter with our handle and priority can only be a leftover of a flanneld that crashed.
  bpf_tc_opts opts = TcOpts(prog_fd, BPF_TC_F_REPLACE);
  err = bpf_tc_attach(&hook, &opts);
  if (err) throw SysError("rtnetlink(RTM_NEWTFILTER)", -err, "attaching the fast path to " + where + " (tc)");
  a.tc_filter = true;
  return a;
}

void FastPath::Detach(Attachment& a) {
  if (a.link_fd >= 0) close(a.link_fd);
  a.link_fd = -1;
  // The device may be gone already (flannel0 disappears with the engine's TUN); its filters went with it.
  if (a.tc_filter) DetachTcFilter(a.ifindex, a.ingress);
  a.tc_filter = false;
}

int FastPath::RemoveLeftovers(uint32_t ifindex) {
  QuietLibbpf();
  int removed = 0;
  for (bool ingress : {true, false})
    if (DetachTcFilter(ifindex, ingress) == 0) removed++;
  return removed;
}

void FastPath::SetRoute(const Route& route, bool peer_fastpath) {
  if (!obj_) throw FastPathError("fast path is closed");
  fp_route_key key{route.prefix_len, htonl(route.net)};
  fp_peer peer{htonl(route.peer_ip), htons(route.peer_port), static_cast<__u8>(peer_fastpath ? FP_PEER_FASTPATH : 0), 0};
  if (bpf_map_update_elem(routes_fd_, &key, &peer, BPF_ANY))
    throw SysError("bpf(BPF_MAP_UPDATE_ELEM)", errno, "adding a fast path route");
}

void FastPath::DeleteRoute(uint32_t subnet, uint8_t prefix_len) {
  if (!obj_) throw FastPathError("fast path is closed");
  fp_route_key key{prefix_len, htonl(subnet & PrefixMask(prefix_len))};
  if (bpf_map_delete_elem(routes_fd_, &key) && errno != ENOENT)
    throw SysError("bpf(BPF_MAP_DELETE_ELEM)", errno, "deleting a fast path route");
}

std::vector<uint64_t> FastPath::Counters() const {
  std::vector<uint64_t> out(FP_COUNTER_COUNT, 0);
  if (!obj_) return out;
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  for (uint32_t i = 0; i < FP_COUNTER_COUNT; i++) {
    if (bpf_map_lookup_elem(counters_fd_, &i, per_cpu.data())) continue;
    for (uint64_t v : per_cpu) out[i] += v;
  }
  return out;
}

const char* FastPath::attach_mode() const {
  if (attached_.empty()) return "";
  return std::any_of(attached_.begin(), attached_.end(), [](const Attachment& a) { return a.link_fd >= 0; }) ? "tcx" : "tc";
}

void FastPath::Close() {
  for (Attachment& a : attached_) Detach(a);
  attached_.clear();
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
  egress_fd_ = ingress_fd_ = config_fd_ = routes_fd_ = counters_fd_ = -1;
}

}  // namespace flannel
