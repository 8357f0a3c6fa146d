// The fast path's N-API class (fastpath_addon.cc), registered by addon.cc as `FastPath`.
#pragma once

#include <napi.h>

namespace flannel {

Napi::Function DefineFastPath(Napi::Env env);

}  // namespace flannel
