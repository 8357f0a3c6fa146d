// N-API surface of the fast path (fastpath.h): the `FastPath` class that addon.cc registers.
#include "fastpath_addon.h"

#include <memory>
#include <string>

#include "fastpath.h"
#include "napi_args.h"
#include "sys_error.h"

namespace flannel {

namespace {

class FastPathWrap : public Napi::ObjectWrap<FastPathWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FastPath",
                       {
                           InstanceMethod<&FastPathWrap::Start>("start"),
                           InstanceMethod<&FastPathWrap::SetRoute>("setRoute"),
                           InstanceMethod<&FastPathWrap::DeleteRoute>("deleteRoute"),
                           InstanceMethod<&FastPathWrap::Counters>("counters"),
                           InstanceMethod<&FastPathWrap::Close>("close"),
                           InstanceAccessor<&FastPathWrap::AttachModeName>("attachMode"),
                           StaticMethod<&FastPathWrap::RemoveLeftovers>("removeLeftovers"),
                       });
  }

  explicit FastPathWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPathWrap>(info) {
    static const char* usage = "Usage: new FastPath({ objectPath: string, attach?: 'auto' | 'tcx' | 'tc' })";
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, usage);
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Value path = o.Get("objectPath");
    if (!path.IsString()) throw Napi::TypeError::New(env, usage);
    AttachMode mode = AttachMode::kAuto;
    Napi::Value attach = o.Get("attach");
    if (!attach.IsUndefined()) {
      std::string a = attach.IsString() ? attach.As<Napi::String>().Utf8Value() : "";
      if (a == "tcx") mode = AttachMode::kTcx;
      else if (a == "tc") mode = AttachMode::kTc;
      else if (a != "auto") throw Napi::TypeError::New(env, usage);
    }
    Native(env, [&] { fast_path_ = std::make_unique<FastPath>(path.As<Napi::String>().Utf8Value(), mode); });
    // clsact filters outlive the process: take them off even when JS never calls close().
    exit_hook_.Arm(env, [this] { Shutdown(); });
  }

  ~FastPathWrap() override { Shutdown(); }

 private:
  FastPath& live(const Napi::CallbackInfo& info) {
    if (!fast_path_) throw Napi::Error::New(info.Env(), "fast path is closed");
    return *fast_path_;
  }

  void Start(const Napi::CallbackInfo& info) {
    static const char* usage =
        "Usage: start({ extIfindex: uint32, tunIfindex: uint32, localIp: uint32, port: 1..65535, antiSpoofing: boolean })";
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, usage);
    Napi::Object o = info[0].As<Napi::Object>();
    FastPathConfig c;
    c.ext_ifindex = static_cast<uint32_t>(IntegerField(o, "extIfindex", 1, 4294967295.0, usage));
    c.tun_ifindex = static_cast<uint32_t>(IntegerField(o, "tunIfindex", 1, 4294967295.0, usage));
    c.local_ip = U32Field(o, "localIp", usage);
    c.port = static_cast<uint16_t>(IntegerField(o, "port", 1, 65535, usage));
    c.anti_spoofing = BooleanField(o, "antiSpoofing", usage);
    Native(env, [&] { live(info).Start(c); });
  }

  void SetRoute(const Napi::CallbackInfo& info) {
    static const char* usage =
        "Usage: setRoute(subnetIp: uint32, prefixLen: 0..32, peerIp: uint32, peerPort: 1..65535, peerFastPath: boolean)";
    Route route = RouteArgs(info, usage);
    if (!info[4].IsBoolean()) throw Napi::TypeError::New(info.Env(), usage);
    bool fast = info[4].As<Napi::Boolean>().Value();
    Native(info.Env(), [&] { live(info).SetRoute(route, fast); });
  }

  void DeleteRoute(const Napi::CallbackInfo& info) {
    SubnetArgs subnet = ReadSubnetArgs(info, "Usage: deleteRoute(subnetIp: uint32, prefixLen: 0..32)");
    Native(info.Env(), [&] { live(info).DeleteRoute(subnet.ip, subnet.prefix_len); });
  }

  // { txPackets, txBytes, rxPackets, rxBytes, txSuperPackets, rxSuperPackets, drops: {reason: n}, passed: {reason: n} }
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> v = Native(env, [&] { return live(info).Counters(); });
    Napi::Object out = Napi::Object::New(env);
    Napi::Object drops = Napi::Object::New(env);
    Napi::Object passed = Napi::Object::New(env);
    for (int i = 0; i < FP_COUNTER_COUNT; i++) {
      Napi::Object& into = i >= FP_PASS_NO_ROUTE ? passed : i >= FP_DROP_TTL_EXCEEDED ? drops : out;
      into.Set(kFastPathCounterNames[i], Napi::Number::New(env, static_cast<double>(v[static_cast<size_t>(i)])));
    }
    out.Set("drops", drops);
    out.Set("passed", passed);
    return out;
  }

  Napi::Value AttachModeName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), live(info).attach_mode());
  }

  static Napi::Value RemoveLeftovers(const Napi::CallbackInfo& info) {
    uint32_t ifindex = ArgU32(info, 0, "Usage: FastPath.removeLeftovers(ifindex: uint32)");
    return Napi::Number::New(info.Env(), FastPath::RemoveLeftovers(ifindex));
  }

  void Close(const Napi::CallbackInfo&) { Shutdown(); }

  void Shutdown() {
    exit_hook_.Disarm();
    fast_path_.reset();
  }

  std::unique_ptr<FastPath> fast_path_;
  ExitHook exit_hook_;
};

}  // namespace

Napi::Function DefineFastPath(Napi::Env env) { return FastPathWrap::Define(env); }

}  // namespace flannel
