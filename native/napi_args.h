// What every binding of the addon shares: argument checks, where a number that is not exactly in range is a usage
// error and never silently cast (-1 or 1e12 as a uint32 would bind, route or attach somewhere else), and the
// translation of native exceptions into JS errors.
#pragma once

#include <napi.h>

#include <cstdint>
#include <functional>
#include <utility>

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

inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v)))
    throw Napi::TypeError::New(info.Env(), usage);
  return static_cast<uint32_t>(v);
}

// A required integer property in [min, max]: a cast of -1 or 1e12 to uint32 would silently bind elsewhere.
inline double IntegerField(const Napi::Object& o, const char* key, double min, double max, const char* usage) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), usage);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<int64_t>(d))) throw Napi::RangeError::New(o.Env(), usage);
  return d;
}

inline uint32_t U32Field(const Napi::Object& o, const char* key, const char* usage) {
  return static_cast<uint32_t>(IntegerField(o, key, 0, 4294967295.0, usage));
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
