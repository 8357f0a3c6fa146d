// Which errors of the packet threads' reads and writes end the datapath. A persistent error comes back on every
// call: the thread records it and the engine stops, rather than spin on a descriptor that poll() keeps reporting.
// Anything else concerns one packet or one moment and is counted. EAGAIN and EINTR never reach these: the loops
// handle them first.
#pragma once

#include <cerrno>

namespace flannel {

// TUN read/write. Deleting the device (`ip link del flannel0`) detaches our descriptor: poll says POLLERR and
// every read and write fails with EBADFD. EIO only means the link is administratively down, which `ip link set up`
// undoes; EINVAL is a write the kernel refused (a bad virtio_net_hdr); ENOMEM/ENOBUFS/EMSGSIZE concern one packet.
// Anything unexpected is persistent: reporting a fault we do not know beats counting it forever.
inline bool TunErrorIsPersistent(int err) {
  switch (err) {
    case EIO:
    case EINVAL:
    case ENOMEM:
    case ENOBUFS:
    case EMSGSIZE:
      return false;
    default:
      return true;
  }
}

// UDP socket recvmmsg/sendmmsg. Nearly everything is about one destination or one moment: ICMP-induced errors
// (ECONNREFUSED, EHOSTUNREACH, ...) are reported once per ICMP message, EPERM/EACCES come from a firewall rule,
// EADDRNOTAVAIL and EINVAL from a local address that went away (it may come back), ENETDOWN from a link that is
// down for now. Only errors saying the descriptor itself is unusable are persistent.
inline bool SocketErrorIsPersistent(int err) {
  switch (err) {
    case EBADF:
    case ENOTSOCK:
    case EFAULT:
    case ENOTCONN:
    case EDESTADDRREQ:
    case EPIPE:
    case ESHUTDOWN:
      return true;
    default:
      return false;
  }
}

}  // namespace flannel
