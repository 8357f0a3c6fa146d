{
  "targets": [
    {
      "target_name": "flannel_datapath",
      "sources": [ "native/addon.cc", "native/engine.cc", "native/forward.cc", "native/offload.cc", "native/packet.cc", "native/platform_probe.cc", "native/tun.cc" ],
      "include_dirs": [ "<!@(node -p \"require('node-addon-api').include\")" ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "cflags_cc": [ "-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread" ],
      "ldflags": [ "-pthread" ]
    }
  ]
}
