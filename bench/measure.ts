import { readFile } from 'node:fs/promises';
import type { Testbed } from '../testbed/netns.js';
import { waitFor } from '../testbed/netns.js';

export interface PathResult {
  readonly tcp1Gbps: number;
  readonly tcp4Gbps: number;
  readonly udpSmallKpps: number;
  readonly rttMs: number;
  /** Whole-machine CPU seconds (user+system+irq+softirq) spent per gigabyte moved in the 1-stream TCP run. */
  readonly cpuSecondsPerGB: number;
}

const TCP_SECONDS = 5;
const UDP_SECONDS = 3;
let nextPort = 5300;

/** Busy CPU time of the whole machine, from /proc/stat, in seconds (USER_HZ = 100). */
async function busyCpuSeconds(): Promise<number> {
  const [cpu] = (await readFile('/proc/stat', 'utf8')).split('\n');
  const [user, nice, system, , , irq, softirq, steal] = cpu.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

interface IperfJson {
  end: {
    sum_received?: { bits_per_second: number; bytes: number };
    sum?: { packets?: number; lost_packets?: number; seconds?: number };
  };
}

async function iperf(bed: Testbed, client: string, server: string, target: string, args: string[], seconds: number): Promise<IperfJson> {
  const port = String(nextPort++);
  const srv = bed.spawn(server, ['iperf3', '-s', '-1', '-B', target, '-p', port]);
  try {
    await waitFor('iperf3 server', async () => (await bed.exec(server, ['ss', '-ltn'])).stdout.includes(`:${port}`), 10_000);
    const { stdout } = await bed.exec(client, ['iperf3', '-c', target, '-p', port, '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 20) * 1000 });
    return JSON.parse(stdout) as IperfJson;
  } finally {
    srv.kill('SIGKILL');
  }
}

export async function measurePath(bed: Testbed, client: string, server: string, target: string): Promise<PathResult> {
  // RTT first, on an idle path: after the 64-byte UDP flood a userspace relay still has its socket buffers to
  // drain, and pings queued behind that backlog would measure the flood, not the path.
  const ping = await bed.exec(client, ['ping', '-q', '-c', '50', '-i', '0.01', '-W', '1', target]);
  const cpuBefore = await busyCpuSeconds();
  const tcp1 = await iperf(bed, client, server, target, [], TCP_SECONDS);
  const cpuSeconds = (await busyCpuSeconds()) - cpuBefore;
  const tcp4 = await iperf(bed, client, server, target, ['-P', '4'], TCP_SECONDS);
  const udp = await iperf(bed, client, server, target, ['-u', '-l', '64', '-b', '0'], UDP_SECONDS);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(ping.stdout);
  const bytes = tcp1.end.sum_received?.bytes ?? 0;
  const udpSum = udp.end.sum ?? {};
  return {
    tcp1Gbps: (tcp1.end.sum_received?.bits_per_second ?? 0) / 1e9,
    tcp4Gbps: (tcp4.end.sum_received?.bits_per_second ?? 0) / 1e9,
    udpSmallKpps: ((udpSum.packets ?? 0) - (udpSum.lost_packets ?? 0)) / (udpSum.seconds ?? UDP_SECONDS) / 1000,
    rttMs: rtt ? Number(rtt[1]) : NaN,
    cpuSecondsPerGB: bytes ? cpuSeconds / (bytes / 1e9) : NaN,
  };
}
