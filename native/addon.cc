// N-API surface of the datapath: a `Datapath` class over the engine, plus pure packet helpers and the forwarding
// decisions under `_test`, so JS tests can check checksum, ICMP and routing arithmetic on hand-built packets.
#include <napi.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine.h"
#include "fastpath_addon.h"
#include "forward.h"
#include "offload.h"
#include "packet.h"
#include "napi_args.h"
#include "platform_probe.h"
#include "sys_error.h"

namespace {

using flannel::ArgU32;
using flannel::BooleanField;
using flannel::IntegerField;
using flannel::Native;
using flannel::ReadSubnetArgs;
using flannel::RouteArgs;
using flannel::SubnetArgs;
using flannel::U32Field;

using flannel::Engine;
using flannel::EngineOptions;

// Bumped whenever the JS-visible surface changes; src/datapath/native.ts refuses an addon of another version.
constexpr int kAbiVersion = 2;

class Datapath : public Napi::ObjectWrap<Datapath> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Datapath",
                       {
                           InstanceMethod<&Datapath::SetRoute>("setRoute"),
                           InstanceMethod<&Datapath::DeleteRoute>("deleteRoute"),
                           InstanceMethod<&Datapath::Counters>("counters"),
                           InstanceMethod<&Datapath::Failure>("failure"),
                           InstanceMethod<&Datapath::Close>("close"),
                           InstanceAccessor<&Datapath::TunName>("tunName"),
                           InstanceAccessor<&Datapath::Offloads>("offloads"),
                       });
  }

  explicit Datapath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Datapath>(info) {
    // The queue bound is printed from kMaxQueues, so the line tells TypeScript's MAX_QUEUES what the engine takes.
    static const std::string usage_line =
        "Usage: new Datapath({ tunName: string (1-15 bytes), localIp: uint32, port: 0..65535, tunIp: uint32, "
        "mtu: 68..65535, antiSpoofing: boolean, offload: boolean, queues: 1.." +
        std::to_string(flannel::kMaxQueues) + " })";
    const char* usage = usage_line.c_str();
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, usage);
    Napi::Object o = info[0].As<Napi::Object>();
    // Every option is required: the defaults live with the flags in TypeScript, and only there.
    EngineOptions opts;
    Napi::Value name = o.Get("tunName");
    if (!name.IsString()) throw Napi::TypeError::New(env, usage);
    opts.tun_name = name.As<Napi::String>().Utf8Value();
    if (opts.tun_name.empty() || opts.tun_name.size() > 15) throw Napi::RangeError::New(env, usage);
    opts.local_ip = U32Field(o, "localIp", usage);
    opts.port = static_cast<uint16_t>(IntegerField(o, "port", 0, 65535, usage));
    opts.tun_ip = U32Field(o, "tunIp", usage);
    opts.mtu = static_cast<size_t>(IntegerField(o, "mtu", 68, 65535, usage));
    opts.queues = static_cast<size_t>(IntegerField(o, "queues", 1, static_cast<double>(flannel::kMaxQueues), usage));
    opts.anti_spoofing = BooleanField(o, "antiSpoofing", usage);
    opts.offload = BooleanField(o, "offload", usage);
    engine_ = Native(env, [&] { return std::make_unique<Engine>(opts); });
    exit_hook_.Arm(env, [this] { Shutdown(); });
  }

  ~Datapath() override { Shutdown(); }

 private:
  Engine& engine(const Napi::CallbackInfo& info) {
    if (!engine_) throw Napi::Error::New(info.Env(), "datapath is closed");
    return *engine_;
  }

  void SetRoute(const Napi::CallbackInfo& info) {
    static const char* usage = "Usage: setRoute(subnetIp: uint32, prefixLen: 0..32, peerIp: uint32, peerPort: 1..65535)";
    engine(info).routes().Set(RouteArgs(info, usage));
  }

  void DeleteRoute(const Napi::CallbackInfo& info) {
    SubnetArgs subnet = ReadSubnetArgs(info, "Usage: deleteRoute(subnetIp: uint32, prefixLen: 0..32)");
    engine(info).routes().Delete(subnet.ip, subnet.prefix_len);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    const flannel::Counters& c = engine(info).counters();
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    auto n = [&](const std::atomic<uint64_t>& v) { return Napi::Number::New(env, static_cast<double>(v.load())); };
    out.Set("txPackets", n(c.tx_packets));
    out.Set("txBytes", n(c.tx_bytes));
    out.Set("rxPackets", n(c.rx_packets));
    out.Set("rxBytes", n(c.rx_bytes));
    out.Set("icmpUnreachableSent", n(c.icmp_unreachable_sent));
    out.Set("gsoSplits", n(c.gso_splits));
    out.Set("groMerges", n(c.gro_merges));
    out.Set("readErrors", n(c.read_errors));
    Napi::Object drops = Napi::Object::New(env);
    for (int i = 0; i < flannel::kDropCount; i++) drops.Set(flannel::kDropNames[i], n(c.drops[i]));
    out.Set("drops", drops);
    Napi::Array queues = Napi::Array::New(env);
    for (uint32_t i = 0; i < engine(info).queue_count(); i++) {
      Napi::Object q = Napi::Object::New(env);
      q.Set("txPackets", n(c.queue_tx[i]));
      q.Set("rxPackets", n(c.queue_rx[i]));
      queues.Set(i, q);
    }
    out.Set("queues", queues);
    return out;
  }

  // undefined while the packet threads run; else the first persistent error, after which they all stopped.
  Napi::Value Failure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::optional<flannel::Failure> f = engine(info).failure();
    if (!f) return env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    out.Set("syscall", Napi::String::New(env, f->syscall));
    out.Set("errno", Napi::Number::New(env, f->err));
    out.Set("code", Napi::String::New(env, flannel::ErrnoName(f->err)));
    out.Set("queue", Napi::Number::New(env, f->queue));
    out.Set("message", Napi::String::New(env, f->message));
    return out;
  }

  void Close(const Napi::CallbackInfo&) { Shutdown(); }

  void Shutdown() {
    exit_hook_.Disarm();
    if (engine_) engine_->Stop();
    engine_.reset();
  }

  Napi::Value TunName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), engine(info).tun_name()); }

  Napi::Value Offloads(const Napi::CallbackInfo& info) {
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("tun", Napi::Boolean::New(info.Env(), engine(info).tun_offload()));
    out.Set("udpGro", Napi::Boolean::New(info.Env(), engine(info).udp_gro()));
    return out;
  }

  std::unique_ptr<Engine> engine_;
  flannel::ExitHook exit_hook_;
};

// --- pure helpers for tests -------------------------------------------------------------------------------

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, const char* usage) {
  if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), usage);
  return info[0].As<Napi::Buffer<uint8_t>>();
}

Napi::Value TestParse(const Napi::CallbackInfo& info) {
  auto buf = BufferArg(info, "Usage: parse(packet: Buffer)");
  flannel::Ipv4View v;
  flannel::DropReason reason;
  Napi::Object out = Napi::Object::New(info.Env());
  if (!flannel::ParseIpv4(buf.Data(), buf.Length(), &v, &reason)) {
    out.Set("drop", flannel::kDropNames[reason]);
    return out;
  }
  out.Set("src", Napi::Number::New(info.Env(), v.src));
  out.Set("dst", Napi::Number::New(info.Env(), v.dst));
  out.Set("headerLength", Napi::Number::New(info.Env(), static_cast<double>(v.header_len)));
  out.Set("totalLength", Napi::Number::New(info.Env(), static_cast<double>(v.total_len)));
  out.Set("ttl", Napi::Number::New(info.Env(), v.ttl));
  out.Set("protocol", Napi::Number::New(info.Env(), v.protocol));
  return out;
}

// Decrements the TTL of a copy; returns the new packet, or null if it must be dropped.
Napi::Value TestDecrementTtl(const Napi::CallbackInfo& info) {
  auto buf = BufferArg(info, "Usage: decrementTtl(packet: Buffer)");
  if (buf.Length() < 20) throw Napi::RangeError::New(info.Env(), "Usage: decrementTtl(packet: Buffer of >= 20 bytes)");
  auto copy = Napi::Buffer<uint8_t>::Copy(info.Env(), buf.Data(), buf.Length());
  if (!flannel::DecrementTtl(copy.Data())) return info.Env().Null();
  return copy;
}

Napi::Value TestBuildNetUnreachable(const Napi::CallbackInfo& info) {
  auto buf = BufferArg(info, "Usage: buildNetUnreachable(packet: Buffer, srcIp: uint32)");
  uint32_t src = ArgU32(info, 1, "Usage: buildNetUnreachable(packet: Buffer, srcIp: uint32)");
  uint8_t out[576];
  size_t len = flannel::BuildNetUnreachable(buf.Data(), buf.Length(), src, out, sizeof out);
  if (!len) return info.Env().Null();
  return Napi::Buffer<uint8_t>::Copy(info.Env(), out, len);
}

// The datagrams of a split (or of one packet, for a decision that did not split), one Buffer each.
Napi::Array Datagrams(Napi::Env env, const flannel::SplitResult& r) {
  Napi::Array out = Napi::Array::New(env, r.count);
  for (size_t i = 0; i < r.count; i++) {
    const iovec& h = r.iov[2 * i];
    const iovec& p = r.iov[2 * i + 1];
    auto seg = Napi::Buffer<uint8_t>::New(env, h.iov_len + p.iov_len);
    memcpy(seg.Data(), h.iov_base, h.iov_len);
    if (p.iov_len) memcpy(seg.Data() + h.iov_len, p.iov_base, p.iov_len);
    out.Set(static_cast<uint32_t>(i), seg);
  }
  return out;
}

flannel::VnetHdr VnetHdrArg(const Napi::Value& v, const char* usage) {
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != sizeof(flannel::VnetHdr))
    throw Napi::TypeError::New(v.Env(), usage);
  flannel::VnetHdr hdr;
  memcpy(&hdr, v.As<Napi::Buffer<uint8_t>>().Data(), sizeof hdr);
  return hdr;
}

// splitTcp(vnetHdr: Buffer(10), packet: Buffer, mtu) -> Buffer[] (the segments), or null if refused.
Napi::Value TestSplitTcp(const Napi::CallbackInfo& info) {
  static const char* usage = "Usage: splitTcp(vnetHdr: Buffer of 10 bytes, packet: Buffer, mtu: number)";
  if (info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  flannel::VnetHdr hdr = VnetHdrArg(info[0], usage);
  auto pkt = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> headers(flannel::kMaxSegments * flannel::kMaxHeaders);
  auto r = std::make_unique<flannel::SplitResult>();
  if (!flannel::SplitTcpV4(hdr, pkt.Data(), pkt.Length(), info[2].As<Napi::Number>().Uint32Value(), headers.data(), r.get()))
    return info.Env().Null();
  return Datagrams(info.Env(), *r);
}

// A route table from [{ subnet, prefixLen, peerIp, peerPort }], as setRoute would build it.
flannel::RouteTable::Snapshot RoutesArg(const Napi::Value& v, const char* usage) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), usage);
  Napi::Array in = v.As<Napi::Array>();
  flannel::RouteTable table;
  for (uint32_t i = 0; i < in.Length(); i++) {
    Napi::Value e = in.Get(i);
    if (!e.IsObject()) throw Napi::TypeError::New(v.Env(), usage);
    Napi::Object r = e.As<Napi::Object>();
    table.Set(flannel::MakeRoute(U32Field(r, "subnet", usage), static_cast<uint8_t>(IntegerField(r, "prefixLen", 0, 32, usage)),
                                 U32Field(r, "peerIp", usage), static_cast<uint16_t>(IntegerField(r, "peerPort", 1, 65535, usage))));
  }
  return table.Load();
}

// egress(packet, routes, { tunIp, mtu, vnetHdr? }) -> what the engine does with a packet read from the TUN:
// { drop, icmp? } or { peerIp, peerPort, split, datagrams }. The packet is copied; the decision edits the copy.
Napi::Value TestEgress(const Napi::CallbackInfo& info) {
  static const char* usage =
      "Usage: egress(packet: Buffer, routes: { subnet, prefixLen, peerIp, peerPort }[], { tunIp: uint32, mtu: 68..65535, "
      "vnetHdr?: Buffer of 10 bytes })";
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsBuffer() || !info[2].IsObject()) throw Napi::TypeError::New(env, usage);
  auto routes = RoutesArg(info[1], usage);
  Napi::Object opts = info[2].As<Napi::Object>();
  flannel::EgressConfig config{U32Field(opts, "tunIp", usage), static_cast<size_t>(IntegerField(opts, "mtu", 68, 65535, usage))};
  flannel::VnetHdr hdr{};
  if (!opts.Get("vnetHdr").IsUndefined()) hdr = VnetHdrArg(opts.Get("vnetHdr"), usage);
  auto in = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> pkt(in.Data(), in.Data() + in.Length());
  std::vector<uint8_t> headers(flannel::kMaxSegments * flannel::kMaxHeaders);
  auto split = std::make_unique<flannel::SplitResult>();
  uint8_t icmp[flannel::kIcmpReplyMax];
  flannel::Egress e = flannel::DecideEgress(hdr, pkt.data(), pkt.size(), *routes, config, headers.data(), split.get(), icmp);
  Napi::Object out = Napi::Object::New(env);
  if (!e.send) {
    out.Set("drop", flannel::kDropNames[e.drop]);
    if (e.icmp_len) out.Set("icmp", Napi::Buffer<uint8_t>::Copy(env, icmp, e.icmp_len));
    return out;
  }
  out.Set("peerIp", Napi::Number::New(env, e.route->peer_ip));
  out.Set("peerPort", Napi::Number::New(env, e.route->peer_port));
  out.Set("split", Napi::Boolean::New(env, e.split));
  out.Set("datagrams", Datagrams(env, *split));
  return out;
}

// ingress(datagram, senderIp, routes, antiSpoofing) -> { drop } or { packet } (what goes into the TUN).
Napi::Value TestIngress(const Napi::CallbackInfo& info) {
  static const char* usage =
      "Usage: ingress(datagram: Buffer, senderIp: uint32, routes: { subnet, prefixLen, peerIp, peerPort }[], antiSpoofing: boolean)";
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsBuffer() || !info[3].IsBoolean()) throw Napi::TypeError::New(env, usage);
  uint32_t sender = ArgU32(info, 1, usage);
  auto routes = RoutesArg(info[2], usage);
  auto in = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> pkt(in.Data(), in.Data() + in.Length());
  flannel::Ingress r = flannel::DecideIngress(pkt.data(), pkt.size(), sender, *routes, info[3].As<Napi::Boolean>().Value());
  Napi::Object out = Napi::Object::New(env);
  if (!r.deliver) {
    out.Set("drop", flannel::kDropNames[r.drop]);
  } else {
    out.Set("packet", Napi::Buffer<uint8_t>::Copy(env, pkt.data(), r.len));
  }
  return out;
}

// coalesce(packets: Buffer[]) -> Buffer[] (each a TUN write: 10-byte vnet header + packet).
Napi::Value TestCoalesce(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "Usage: coalesce(packets: Buffer[])");
  Napi::Array in = info[0].As<Napi::Array>();
  Napi::Array out = Napi::Array::New(info.Env());
  auto coalescer = std::make_unique<flannel::TcpCoalescer>();
  uint32_t n = 0;
  auto emit = [&](iovec* iov, int iovcnt) {
    size_t len = 0;
    for (int k = 0; k < iovcnt; k++) len += iov[k].iov_len;
    auto buf = Napi::Buffer<uint8_t>::New(info.Env(), len);
    size_t off = 0;
    for (int k = 0; k < iovcnt; k++) {
      memcpy(buf.Data() + off, iov[k].iov_base, iov[k].iov_len);
      off += iov[k].iov_len;
    }
    out.Set(n++, buf);
  };
  for (uint32_t i = 0; i < in.Length(); i++) {
    Napi::Value v = in.Get(i);
    if (!v.IsBuffer()) throw Napi::TypeError::New(info.Env(), "Usage: coalesce(packets: Buffer[])");
    auto b = v.As<Napi::Buffer<uint8_t>>();
    coalescer->Add(b.Data(), b.Length(), emit);
  }
  coalescer->Flush(emit);
  return out;
}

// probePlatform({ iterations? }) -> what a syscall and a thread wakeup cost here (see platform_probe.h).
// Blocks for about iterations * 0.7 ms; meant for `npm run bench`, never for the packet path.
Napi::Value ProbePlatform(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int iterations = 1000;
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("iterations").IsUndefined())
      iterations = static_cast<int>(IntegerField(o, "iterations", 1, 100000, "Usage: probePlatform({ iterations: 1..100000 })"));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("syscallUs", Napi::Number::New(env, flannel::NullSyscallMicros(iterations * 100)));
  auto put = [&](const char* name, const flannel::WakeupCost& c) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("roundTripUs", Napi::Number::New(env, c.round_trip_us));
    o.Set("wakerUs", Napi::Number::New(env, c.waker_us));
    out.Set(name, o);
  };
  Native(env, [&] {
    put("wakeupSameCpu", flannel::MeasureWakeup(0, 0, iterations));
    if (std::thread::hardware_concurrency() > 1) put("wakeupCrossCpu", flannel::MeasureWakeup(0, 1, iterations));
  });
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  exports.Set("Datapath", Datapath::Define(env));
  exports.Set("FastPath", flannel::DefineFastPath(env));
  Napi::Object test = Napi::Object::New(env);
  test.Set("parse", Napi::Function::New(env, TestParse));
  test.Set("decrementTtl", Napi::Function::New(env, TestDecrementTtl));
  test.Set("buildNetUnreachable", Napi::Function::New(env, TestBuildNetUnreachable));
  test.Set("splitTcp", Napi::Function::New(env, TestSplitTcp));
  test.Set("coalesce", Napi::Function::New(env, TestCoalesce));
  test.Set("egress", Napi::Function::New(env, TestEgress));
  test.Set("ingress", Napi::Function::New(env, TestIngress));
  exports.Set("_test", test);
  exports.Set("probePlatform", Napi::Function::New(env, ProbePlatform));
  return exports;
}

}  // namespace

NODE_API_MODULE(flannel_datapath, Init)
