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
TunDevice OpenTun(const std::string& requested_name, bool vnet_hdr);

// Asks the kernel to hand the TUN TCP super packets and partial checksums (TSO4 + CSUM). False if refused.
bool EnableTunOffload(int tun_fd);

// Lets the kernel merge received datagrams of one flow into one read (UDP_GRO). False if unsupported.
bool EnableUdpGro(int udp_fd);

// A UDP socket bound to ip:port (host byte order), nonblocking, with large buffers. Throws SysError.
int OpenUdpSocket(uint32_t ip, uint16_t port);

}  // namespace flannel
