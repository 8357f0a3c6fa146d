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

// Opens a layer-3 TUN device without packet-info header, nonblocking. Throws SysError.
TunDevice OpenTun(const std::string& requested_name);

// A UDP socket bound to ip:port (host byte order), nonblocking, with large buffers. Throws SysError.
int OpenUdpSocket(uint32_t ip, uint16_t port);

}  // namespace flannel
