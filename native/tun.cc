#include "tun.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "sys_error.h"

namespace flannel {

TunDevice OpenTun(const std::string& requested_name, bool vnet_hdr, bool multi_queue) {
  if (requested_name.size() >= IFNAMSIZ) throw std::invalid_argument("Usage: TUN name must be shorter than 16 bytes");
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw SysError("open", errno, "open(/dev/net/tun)");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0) | (multi_queue ? IFF_MULTI_QUEUE : 0);
  std::strncpy(ifr.ifr_name, requested_name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    throw SysError("ioctl(TUNSETIFF)", err, "ioctl(TUNSETIFF " + requested_name + (multi_queue ? ", multi-queue)" : ")"));
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
  return setsockopt(udp_fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0;
}

int OpenUdpSocket(uint32_t ip, uint16_t port, bool reuse_port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SysError("socket", errno, "socket(AF_INET, SOCK_DGRAM)");
  int one = 1;
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    throw SysError("setsockopt(SO_REUSEPORT)", err);
  }
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
    throw SysError("bind", err, std::string("bind(") + text + ":" + std::to_string(port) + ")");
  }
  return fd;
}

void SteerByInnerFlow(int udp_fd, size_t sockets) {
  // Classic BPF over the UDP payload, which is the inner IPv4 packet. A failed load (a runt datagram) makes the
  // program return 0, i.e. socket 0. Offsets assume a 20-byte inner header for the ports; with IP options the
  // words read are still the same for every packet of the flow, which is all that ordering needs.
  const uint32_t k = static_cast<uint32_t>(sockets);
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),         // A = inner source address
      BPF_STMT(BPF_MISC | BPF_TAX, 0),                 // X = A
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),         // A = inner destination address
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),          // A ^= X
      BPF_STMT(BPF_MISC | BPF_TAX, 0),                 // X = A
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),          // A = inner protocol
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 1, 0),    // TCP: mix in the ports
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 3),   // UDP too; anything else: addresses only
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 20),         // A = source and destination ports
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),          // A ^= X
      BPF_STMT(BPF_MISC | BPF_TAX, 0),                 // X = A
      BPF_STMT(BPF_MISC | BPF_TXA, 0),                 // A = X
      BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),         // fold the high half in, so /16s and ports both count
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),          // A ^= X
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xffff),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, k),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  sock_fprog prog = {static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (setsockopt(udp_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0)
    throw SysError("setsockopt(SO_ATTACH_REUSEPORT_CBPF)", errno);
}

}  // namespace flannel
