// Entry point of the native datapath addon. The engine registers itself here as it lands.
#include <napi.h>

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(flannel_datapath, Init)
