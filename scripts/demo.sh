#!/usr/bin/env bash
# npm run demo: installs what is missing (as root on Debian), builds, then runs the demo on the test bed
# (testbed/demo.ts): etcd and three network-namespace hosts running flanneld, pinging across the overlay.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# make, g++ and python3: node-gyp builds the addon; sysctl (procps): the test bed's hosts.
for bin in etcd:etcd-server etcdctl:etcd-client ip:iproute2 ss:iproute2 iptables:iptables iperf3:iperf3 ping:iputils-ping socat:socat clang:clang sysctl:procps make:make g++:g++ python3:python3; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || need+=("${bin#*:}")
done
# The addon links libbpf (the udp backend's eBPF fast path); clang builds the BPF object.
dpkg -s libbpf-dev >/dev/null 2>&1 || need+=(libbpf-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
# The native addon is only built when missing: node-gyp rebuild deletes build/ under anything using it right now.
[ -f build/Release/flannel_datapath.node ] || npm run --silent build:native >/dev/null
npm run --silent build:ts >/dev/null
exec node dist/testbed/demo.js
