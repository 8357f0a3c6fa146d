// Argument checks shared by the addon's bindings: a number that is not an exact uint32 is a usage error, never
// silently truncated (a cast of -1 or 1e12 would bind, route or attach somewhere else).
#pragma once

#include <napi.h>

#include <cstdint>

namespace flannel {

inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), usage);
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v)))
    throw Napi::TypeError::New(info.Env(), usage);
  return static_cast<uint32_t>(v);
}

inline uint32_t PrefixMask(uint32_t prefix_len) { return prefix_len == 0 ? 0 : 0xffffffffu << (32 - prefix_len); }

}  // namespace flannel
