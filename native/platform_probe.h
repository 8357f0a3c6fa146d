// What a syscall and a thread wakeup cost on this machine. A userspace tunnel pays both per batch, where the
// kernel's own tunnels pay neither, so `npm run bench` records them next to its ratios: on a VM where a syscall
// costs ten times what it does on bare metal, or waking a thread on another vCPU takes tens of microseconds, the
// same code lands at a different fraction of kernel VXLAN.
#pragma once

namespace flannel {

struct WakeupCost {
  double round_trip_us = 0;  // thread A wakes B, B wakes A back; both were asleep
  double waker_us = 0;       // time A spends inside the write() that wakes B
};

// Mean cost of a trivial syscall (getppid), over `iterations`.
double NullSyscallMicros(int iterations);

// Two threads pinned to cpu_a and cpu_b ping-pong through eventfds `iterations` times, each round after a pause
// long enough for both to be asleep. Throws SysError if the threads cannot be pinned.
WakeupCost MeasureWakeup(int cpu_a, int cpu_b, int iterations);

}  // namespace flannel
