{
  "targets": [
    {
      "target_name": "flannel_datapath",
      "dependencies": [ "flannel_udp_bpf" ],
      "sources": [ "native/addon.cc", "native/engine.cc", "native/fastpath.cc", "native/fastpath_addon.cc", "native/forward.cc", "native/offload.cc", "native/packet.cc", "native/platform_probe.cc", "native/tun.cc" ],
      "include_dirs": [ "<!@(node -p \"require('node-addon-api').include\")" ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "cflags_cc": [ "-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread" ],
      "ldflags": [ "-pthread" ],
      "libraries": [ "-lbpf" ]
    },
    {
      "target_name": "flannel_udp_bpf",
      "type": "none",
      "actions": [
        {
          "action_name": "build_bpf_object",
          "inputs": [ "native/bpf/flannel_udp.bpf.c", "native/bpf/flannel_udp.h", "native/bpf/build.sh" ],
          "outputs": [ "<(PRODUCT_DIR)/flannel_udp.bpf.o" ],
          "action": [ "sh", "native/bpf/build.sh", "native/bpf/flannel_udp.bpf.c", "<(PRODUCT_DIR)/flannel_udp.bpf.o" ]
        }
      ]
    }
  ]
}
