// Errors from system calls, carrying the call and the errno name so that JS sees e.g.
// "ioctl(TUNSETIFF) failed: EPERM (Operation not permitted)".
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace flannel {

inline const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTSUP: return "ENOTSUP";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETUNREACH: return "ENETUNREACH";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    default: return "E?";
  }
}

class SysError : public std::runtime_error {
 public:
  SysError(const std::string& call, int err)
      : std::runtime_error(call + " failed: " + ErrnoName(err) + " (" + std::strerror(err) + ")"), err_(err) {}
  int err() const { return err_; }

 private:
  int err_;
};

}  // namespace flannel
