#!/usr/bin/env bash
# npm run demo: a three-host flannel-ts cluster on this machine, in network namespaces.
#   switch namespace: a bridge (the "LAN", 198.18.0.0/24) and etcd on 198.18.0.254
#   host namespaces h1..h3: flanneld leasing a subnet of 198.19.0.0/16, udp backend (flannel0, port 8285)
#   container namespaces behind each host's bridge, addressed from FLANNEL_SUBNET as docker --bip would be
# Everything it creates is removed on exit. Only RFC 2544 addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

need=()
for bin in etcd:etcd-server etcdctl:etcd-client ip:iproute2 iptables:iptables iperf3:iperf3 ping:iputils-ping socat:socat; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || need+=("${bin#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -d node_modules ] || { step "npm install"; npm install --no-audit --no-fund; }
step "building"
# The native addon is only built when missing: node-gyp rebuild deletes build/ under anything using it right now.
[ -f build/Release/flannel_datapath.node ] || npm run --silent build:native >/dev/null
npm run --silent build:ts >/dev/null

P="ft-$$-demo"
SW="$P-sw"
WORK=$(mktemp -d /tmp/flannel-demo.XXXXXX)
PORT=2379
export ETCDCTL_API=3
ctl() { ip netns exec "$SW" etcdctl --endpoints "http://198.18.0.254:$PORT" "$@"; }

cleanup() {
  # flanneld first, politely: SIGTERM removes flannel0 and keeps the lease, as in production.
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-h" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
  done
  sleep 0.5
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step "the LAN: switch namespace with a bridge, etcd on 198.18.0.254:$PORT"
ip netns add "$SW"
ip -n "$SW" link set lo up
# A fixed MAC: a bridge without one takes its lowest port MAC, which changes as hosts join and strands their ARP entries.
ip -n "$SW" link add br0 address 02:00:c6:12:00:fe type bridge
ip -n "$SW" addr add 198.18.0.254/24 dev br0
ip -n "$SW" link set br0 up
ip netns exec "$SW" etcd --name demo --data-dir "$WORK/etcd" \
  --listen-client-urls "http://198.18.0.254:$PORT" --advertise-client-urls "http://198.18.0.254:$PORT" \
  --listen-peer-urls http://127.0.0.1:2380 --log-level error >"$WORK/etcd.log" 2>&1 &
disown
for _ in $(seq 50); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

step "network config at /coreos.com/network/config"
ctl put /coreos.com/network/config '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}' >/dev/null
ctl get /coreos.com/network/config --print-value-only

# plug NAME BRIDGE_NS BRIDGE NS: a new namespace NS whose eth0 is a veth plugged into BRIDGE in BRIDGE_NS.
plug() {
  local name=$1 bridge_ns=$2 bridge=$3 ns=$4
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$name" type veth peer name "${name}i"
  ip link set "$name" netns "$bridge_ns"; ip -n "$bridge_ns" link set "$name" master "$bridge" up
  ip link set "${name}i" netns "$ns"; ip -n "$ns" link set "${name}i" name eth0
}

for i in 1 2 3; do
  h="$P-h$i"
  plug "ftd$$$i" "$SW" br0 "$h"
  ip -n "$h" addr add "198.18.0.$i/24" dev eth0
  ip -n "$h" link set eth0 up
  ip netns exec "$h" sysctl -qw net.ipv4.ip_forward=1
done

step "starting flanneld on h1, h2, h3"
for i in 1 2 3; do
  ip netns exec "$P-h$i" node dist/src/cli/flanneld.js --etcd-endpoints "http://198.18.0.254:$PORT" \
    --iface eth0 --subnet-file "$WORK/h$i/subnet.env" >"$WORK/h$i.log" 2>&1 &
  disown
done
for i in 1 2 3; do
  for _ in $(seq 100); do [ -s "$WORK/h$i/subnet.env" ] && break; sleep 0.1; done
  [ -s "$WORK/h$i/subnet.env" ] || { echo "flanneld on h$i did not start:"; cat "$WORK/h$i.log"; exit 1; }
done

step "leases in etcd (flanneld leases)"
ip netns exec "$SW" node dist/src/cli/flanneld.js leases --etcd-endpoints "http://198.18.0.254:$PORT"
step "the same keys, raw (etcdctl get --prefix /coreos.com/network/subnets)"
ctl get /coreos.com/network/subnets --prefix

for i in 1 2 3; do
  step "h$i: $WORK/h$i/subnet.env"
  cat "$WORK/h$i/subnet.env"
  # A container behind the host's bridge, as docker --bip=\$FLANNEL_SUBNET --mtu=\$FLANNEL_MTU would set it up.
  . "$WORK/h$i/subnet.env"
  h="$P-h$i"; c="$P-c$i"
  gw=${FLANNEL_SUBNET%/*}; len=${FLANNEL_SUBNET#*/}; cip=${gw%.*}.2
  ip -n "$h" link add cbr0 type bridge
  ip -n "$h" addr add "$FLANNEL_SUBNET" dev cbr0
  ip -n "$h" link set cbr0 up
  plug "ftc$$$i" "$h" cbr0 "$c"
  ip -n "$c" addr add "$cip/$len" dev eth0
  ip -n "$c" link set eth0 mtu "$FLANNEL_MTU" up
  ip -n "$c" route add default via "$gw"
  eval "C$i=$cip"
done

step "h1's kernel view: flannel0 and its route"
ip -n "$P-h1" addr show flannel0 | grep -E 'flannel0|inet '
ip -n "$P-h1" route

ok=0
for pair in "1 2" "2 3" "3 1"; do
  set -- $pair
  src="C$1"; dst="C$2"
  step "ping from container on h$1 (${!src}) to container on h$2 (${!dst}) across the overlay"
  if ip netns exec "$P-c$1" ping -c 3 -i 0.2 -W 2 "${!dst}"; then ok=$((ok + 1)); fi
done

step "summary"
echo "$ok of 3 container pairs reachable over the flannel-ts udp overlay"
[ "$ok" -eq 3 ]
