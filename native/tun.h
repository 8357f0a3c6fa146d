// TUN devices through /dev/net/tun: rtnetlink cannot create them (ENOTSUP), so this is the only native
// part of the kernel plumbing; addresses, MTU, link state and routes are set from TypeScript over netlink.
#pragma once

#include <cstdint>
#include <string>

namespace flannel {

struct TunDevice {
  int fd = -1;
  std::string name;  // the kernel's name, after expanding a template such as "flannel%d"
};

// Opens a layer-3 TUN device without packet-info header, nonblocking; with vnet_hdr every read and write
// carries a 10-byte virtio_net_hdr in front. Throws SysError.
// With multi_queue the device is IFF_MULTI_QUEUE and each further OpenTun of the same name adds a queue.
TunDevice OpenTun(const std::string& requested_name, bool vnet_hdr, bool multi_queue = false);

// Asks the kernel to hand the TUN TCP super packets and partial checksums (TSO4 + CSUM). False if refused.
bool EnableTunOffload(int tun_fd);

// Lets the kernel merge received datagrams of one flow into one read (UDP_GRO). False if unsupported.
bool EnableUdpGro(int udp_fd);

// A UDP socket bound to ip:port (host byte order), nonblocking, with large buffers. With reuse_port, further
// sockets may bind the same address (SO_REUSEPORT) and the kernel spreads datagrams over them. Throws SysError.
int OpenUdpSocket(uint32_t ip, uint16_t port, bool reuse_port = false);

// Steers each datagram arriving on a SO_REUSEPORT group of `sockets` by the inner packet's flow (addresses, and
// ports for TCP/UDP), so one peer's flows spread over the group while each flow keeps to one socket. The kernel's
// default hash looks only at the outer addresses and ports, which are the same for everything from one peer.
// Throws SysError.
void SteerByInnerFlow(int udp_fd, size_t sockets);

}  // namespace flannel
