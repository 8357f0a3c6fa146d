// Errors from system calls. Each carries the call and the errno, so that JS gets both a readable message, e.g.
// "ioctl(TUNSETIFF flannel0) failed: EPERM (Operation not permitted)", and `code`/`errno`/`syscall` to decide on.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace flannel {

// The errno's symbolic name (EBADFD, ECONNREFUSED, ...), from glibc's own table, so no errno is ever missing.
inline const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "EUNKNOWN";
}

// "<what> failed: ECODE (description)": the one format every native failure message uses.
inline std::string SysErrorMessage(const std::string& what, int err) {
  return what + " failed: " + ErrnoName(err) + " (" + std::strerror(err) + ")";
}

class SysError : public std::runtime_error {
 public:
  // `syscall` names the call and, for ioctl/setsockopt, its request (e.g. "ioctl(TUNSETIFF)"): JS decides on it.
  // `what` is how the message names it, with the object it was applied to (e.g. "bind(198.18.0.1:8285)").
  SysError(const std::string& syscall, int err, const std::string& what)
      : std::runtime_error(SysErrorMessage(what, err)), syscall_(syscall), err_(err) {}
  SysError(const std::string& syscall, int err) : SysError(syscall, err, syscall) {}
  const std::string& syscall() const { return syscall_; }
  int err() const { return err_; }

 private:
  std::string syscall_;
  int err_;
};

}  // namespace flannel
