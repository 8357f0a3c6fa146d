#include "platform_probe.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>

#include "sys_error.h"

namespace flannel {

namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Throws unless this process may run on cpu.
void RequireCpu(int cpu) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) throw SysError("sched_getaffinity", errno);
  if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set)) throw SysError("sched_setaffinity", EINVAL, "pin to cpu " + std::to_string(cpu));
}

// Pins the calling thread; the CPU was checked with RequireCpu, so this cannot fail for lack of the CPU.
void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Sleeps until fd is readable (or a second passes) and consumes its count.
void Await(int fd) {
  pollfd p = {fd, POLLIN, 0};
  poll(&p, 1, 1000);
  uint64_t v;
  if (read(fd, &v, sizeof v) < 0) { /* timed out: the next round still measures */ }
}

void Signal(int fd) {
  uint64_t one = 1;
  if (write(fd, &one, sizeof one) < 0) { /* eventfd counter cannot overflow at these counts */ }
}

struct EventFd {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  EventFd() {
    if (fd < 0) throw SysError("eventfd", errno);
  }
  ~EventFd() { close(fd); }
};

}  // namespace

double NullSyscallMicros(int iterations) {
  auto start = Clock::now();
  for (int i = 0; i < iterations; i++) syscall(SYS_getppid);
  return Micros(Clock::now() - start) / iterations;
}

WakeupCost MeasureWakeup(int cpu_a, int cpu_b, int iterations) {
  RequireCpu(cpu_a);
  RequireCpu(cpu_b);
  EventFd to_b, to_a;
  // Both ends on threads of their own: pinning must not touch the caller (Node's main thread).
  std::thread echo([&] {
    PinTo(cpu_b);
    for (int i = 0; i < iterations; i++) {
      Await(to_b.fd);
      Signal(to_a.fd);
    }
  });
  Clock::duration round_trips{}, waker{};
  std::thread measure([&] {
    PinTo(cpu_a);
    for (int i = 0; i < iterations; i++) {
      // Long enough for the echo thread to be asleep in poll() and its vCPU idle, as between the packets of a ping.
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      auto start = Clock::now();
      Signal(to_b.fd);
      auto signalled = Clock::now();
      Await(to_a.fd);
      round_trips += Clock::now() - start;
      waker += signalled - start;
    }
  });
  measure.join();
  echo.join();
  WakeupCost cost;
  cost.round_trip_us = Micros(round_trips) / iterations;
  cost.waker_us = Micros(waker) / iterations;
  return cost;
}

}  // namespace flannel
