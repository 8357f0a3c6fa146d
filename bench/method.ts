// How every figure is taken: the constants the measurement uses and the method text recorded beside the results,
// in one place so the JSON's description cannot drift from what the code does.

export const TCP_SECONDS = 5;
export const UDP_SECONDS = 3;
/** iperf3 -O: seconds at the start of each run that are not counted (TCP slow start, ARP, first wakeups). */
export const OMIT_SECONDS = 1;
export const UDP_DATAGRAM_BYTES = 64;
export const PING_COUNT = 50;
export const PING_INTERVAL_SECONDS = 0.01;
/** Pause after each path's sample, so a userspace relay still draining the UDP flood does not load the next path. */
export const SETTLE_MS = 1000;
export const DEFAULT_ROUNDS = 3;
/** Fewer rounds give no range worth publishing. */
export const MIN_PUBLISH_ROUNDS = 3;

/** "3 interleaved rounds", "1 interleaved round". */
export function roundsText(count: number): string {
  return `${count} interleaved round${count === 1 ? '' : 's'}`;
}

export interface PathMtu {
  readonly label: string;
  readonly mtuNote: string;
}

/** The method as recorded in the run's JSON. */
export function describeMethod(rounds: number, paths: readonly PathMtu[]): Record<string, string> {
  return {
    hosts:
      'every path runs between its own two network-namespace hosts, whose eth0 is a veth (MTU 1500) on one bridge in a ' +
      'switch namespace: the same LAN for all, and paths that need the same device or port (flannel0, 8285) coexist. ' +
      'flanneld-based paths each have their own etcd prefix on one etcd in the switch namespace.',
    rounds:
      `${rounds} interleaved rounds: each round measures every path once, in the same order, so slow drift of a shared ` +
      'machine reaches every path alike. Each figure is the median over rounds, with its min and max; ratios are ratios ' +
      "of medians; 'samples' keeps every round's value (null where that measurement failed).",
    target:
      "host 1 to host 2's address on the path; for flanneld-based paths, the first address of host 2's lease on a bridge " +
      'made from the subnet file as docker --bip/--mtu would make it, the one address every backend reaches.',
    mtu:
      'each overlay at its own default MTU, as users run it, not at one common MTU: ' +
      paths.map((p) => `${p.label} ${p.mtuNote}`).join('; ') +
      '. TCP sizes its segments from these, so overhead per byte differs by design.',
    tcp: `iperf3 -t ${TCP_SECONDS} -O ${OMIT_SECONDS} (the first ${OMIT_SECONDS} s, slow start, not counted), 1 stream and -P 4; Gbit/s received`,
    udpSmall:
      `iperf3 -u -l ${UDP_DATAGRAM_BYTES} -b 0 -t ${UDP_SECONDS} -O ${OMIT_SECONDS}; kpps received ` +
      `(receiver's bytes / ${UDP_DATAGRAM_BYTES} / seconds; iperf 3.12 miscounts lost packets with -O)`,
    rtt: `ping -c ${PING_COUNT} -i ${PING_INTERVAL_SECONDS} on the idle path, before its load tests; average ms`,
    cpu:
      'whole-machine busy time from /proc/stat (user+nice+system+irq+softirq+steal, in ticks of getconf CLK_TCK) from the ' +
      'moment the iperf3 server listens until the 1-stream client exits, divided by every byte the client sent in that ' +
      'window (the omitted first second included, so both cover the same time); includes iperf3 on both ends and ' +
      'anything else the machine runs',
    platform:
      'before the paths: mean getppid() cost, and two eventfd-connected threads pinned to CPUs 0/0 and 0/1 waking ' +
      'each other after 300 µs asleep, 1000 rounds',
    settle: `${SETTLE_MS} ms pause after each path's sample`,
  };
}
