#include "tun.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "sys_error.h"

namespace flannel {

TunDevice OpenTun(const std::string& requested_name, bool vnet_hdr) {
  if (requested_name.size() >= IFNAMSIZ) throw std::invalid_argument("Usage: TUN name must be shorter than 16 bytes");
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw SysError("open(/dev/net/tun)", errno);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
  std::strncpy(ifr.ifr_name, requested_name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    throw SysError("ioctl(TUNSETIFF " + requested_name + ")", err);
  }
  return TunDevice{fd, std::string(ifr.ifr_name)};
}

bool EnableTunOffload(int tun_fd) {
  // TUN_F_TSO6 is asked for too: the kernel refuses TSO without it on some versions, and we never see IPv6
  // super packets because no IPv6 route points at the device.
  unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  return ioctl(tun_fd, TUNSETOFFLOAD, offloads) == 0;
}

bool EnableUdpGro(int udp_fd) {
  int one = 1;
  return setsockopt(udp_fd, IPPROTO_UDP, 104 /* UDP_GRO */, &one, sizeof one) == 0;
}

int OpenUdpSocket(uint32_t ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SysError("socket(AF_INET, SOCK_DGRAM)", errno);
  // Bursts of a few thousand datagrams must not overflow the default ~200 KiB buffers; FORCE works as root.
  int size = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(ip);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    close(fd);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
    throw SysError(std::string("bind(") + text + ":" + std::to_string(port) + ")", err);
  }
  return fd;
}

}  // namespace flannel
