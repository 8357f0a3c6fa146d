// What every binding of the addon shares: argument checks, where a number that is not exactly in range is a usage
// error and never silently cast (-1 or 1e12 as a uint32 would bind, route or attach somewhere else), and the
// translation of native exceptions into JS errors.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <utility>

#include "route_table.h"
#include "sys_error.h"

namespace flannel {

// Runs f, turning native exceptions into JS errors. A failed system call also carries `code` (the errno name),
// `errno` and `syscall`, as Node's own system errors do, so that callers decide on those, not on the message.
template <typename F>
auto Native(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SysError& e) {
    Napi::Error err = Napi::Error::New(env, e.what());
    err.Set("code", Napi::String::New(env, ErrnoName(e.err())));
    err.Set("errno", Napi::Number::New(env, e.err()));
    err.Set("syscall", Napi::String::New(env, e.syscall()));
    throw err;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

constexpr double kU32Max = 4294967295.0;

// The one integer check of every binding: `v` must be a number (else TypeError) that is an integer in [min, max]
// (else RangeError: a fraction, NaN, or a value a cast would silently wrap, -1 or 1e12 as a uint32).
inline double CheckInteger(const Napi::Value& v, double min, double max, const char* usage) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), usage);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != std::floor(d)) throw Napi::RangeError::New(v.Env(), usage);
  return d;
}

// Argument i, an integer in [min, max]; a missing argument is undefined, so a TypeError.
inline double ArgInteger(const Napi::CallbackInfo& info, size_t i, double min, double max, const char* usage) {
  return CheckInteger(info[i], min, max, usage);
}

inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  return static_cast<uint32_t>(ArgInteger(info, i, 0, kU32Max, usage));
}

// A required integer property in [min, max].
inline double IntegerField(const Napi::Object& o, const char* key, double min, double max, const char* usage) {
  return CheckInteger(o.Get(key), min, max, usage);
}

inline uint32_t U32Field(const Napi::Object& o, const char* key, const char* usage) {
  return static_cast<uint32_t>(IntegerField(o, key, 0, kU32Max, usage));
}

// The subnet of setRoute and deleteRoute, both bindings': subnetIp: uint32, prefixLen: 0..32 (arguments 0 and 1).
struct SubnetArgs {
  uint32_t ip;
  uint8_t prefix_len;
};

inline SubnetArgs ReadSubnetArgs(const Napi::CallbackInfo& info, const char* usage) {
  return SubnetArgs{ArgU32(info, 0, usage), static_cast<uint8_t>(ArgInteger(info, 1, 0, 32, usage))};
}

// setRoute(subnetIp: uint32, prefixLen: 0..32, peerIp: uint32, peerPort: 1..65535, ...): the route its first four
// arguments make.
inline Route RouteArgs(const Napi::CallbackInfo& info, const char* usage) {
  SubnetArgs subnet = ReadSubnetArgs(info, usage);
  return MakeRoute(subnet.ip, subnet.prefix_len, ArgU32(info, 2, usage), static_cast<uint16_t>(ArgInteger(info, 3, 1, 65535, usage)));
}

inline bool BooleanField(const Napi::Object& o, const char* key, const char* usage) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), usage);
  return v.As<Napi::Boolean>().Value();
}

// Runs `stop` when the Node environment shuts down, unless Disarm() ran first: threads must be joined and kernel
// attachments removed before the process goes, even when JS never calls close(). Owners Disarm() in their own
// close path and destructor.
class ExitHook {
 public:
  void Arm(napi_env env, std::function<void()> stop) {
    stop_ = std::move(stop);
    env_ = env;
    armed_ = napi_add_env_cleanup_hook(env, &ExitHook::Run, this) == napi_ok;
  }
  void Disarm() {
    if (armed_) napi_remove_env_cleanup_hook(env_, &ExitHook::Run, this);
    armed_ = false;
  }
  ~ExitHook() { Disarm(); }

 private:
  static void Run(void* self) {
    auto* hook = static_cast<ExitHook*>(self);
    hook->armed_ = false;  // node drops a hook once it has run
    hook->stop_();
  }

  std::function<void()> stop_;
  napi_env env_ = nullptr;
  bool armed_ = false;
};

}  // namespace flannel
