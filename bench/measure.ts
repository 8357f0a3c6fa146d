import type { ChildProcess } from 'node:child_process';
import type { Testbed } from '../testbed/netns.js';
import { waitFor } from '../testbed/netns.js';
import { readBusyCpuSeconds } from './cpu-time.js';
import type { Sample } from './figures.js';
import { bytesSentInWholeRun, parseIperfJson, receivedGbps, receivedKpps, type IperfJson } from './iperf3-json.js';
import { OMIT_SECONDS, PING_COUNT, PING_INTERVAL_SECONDS, SETTLE_MS, TCP_SECONDS, UDP_DATAGRAM_BYTES, UDP_SECONDS } from './method.js';
import type { ReadyPath } from './paths.js';

let nextPort = 5300;

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/**
 * One iperf3 run: a one-off server on host 2, bound to the target, and the client on host 1. `busySeconds` is the
 * machine's busy CPU time from the moment the server listens until the client exits, so the server's start-up and
 * the wait for it stay out of the window. The server is killed (and reaped) whatever happens.
 */
async function iperf(bed: Testbed, path: ReadyPath, args: string[], seconds: number, clockTicks: number): Promise<{ json: IperfJson; busySeconds: number }> {
  const port = nextPort++;
  const server = bed.spawn(path.server, ['iperf3', '-s', '-1', '-B', path.target, '-p', String(port)], { stdio: 'ignore' });
  try {
    await bed.waitForListener(path.server, port);
    const cpuBefore = await readBusyCpuSeconds(clockTicks);
    const argv = ['iperf3', '-c', path.target, '-p', String(port), '-t', String(seconds), '-O', String(OMIT_SECONDS), '-J', ...args];
    const stdout = await bed.exec(path.client, argv, { timeoutMs: (seconds + OMIT_SECONDS + 20) * 1000 }).then(
      (r) => r.stdout,
      // iperf3 -J exits 1 with its reason in the JSON it prints; parseIperfJson turns that into the error.
      (err: { stdout?: string; message: string }) => err.stdout || Promise.reject(err),
    );
    const busySeconds = (await readBusyCpuSeconds(clockTicks)) - cpuBefore;
    return { json: parseIperfJson(stdout), busySeconds };
  } finally {
    await stop(server);
  }
}

async function pingAverageMs(bed: Testbed, path: ReadyPath): Promise<number> {
  const { stdout } = await bed.exec(path.client, ['ping', '-q', '-c', String(PING_COUNT), '-i', String(PING_INTERVAL_SECONDS), '-W', '1', path.target]);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(stdout);
  if (!avg) throw new Error(`ping printed no round-trip times: ${stdout.trim().split('\n').pop()}`);
  return Number(avg[1]);
}

/**
 * One round's figures for one path. A failed measurement leaves NaN in its figure and its message in `errors`;
 * the other figures of the round are still taken.
 */
export async function measureSample(bed: Testbed, path: ReadyPath, clockTicks: number): Promise<{ sample: Sample; errors: string[] }> {
  const errors: string[] = [];
  const attempt = async <T>(what: string, f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : err}`);
      return undefined;
    }
  };
  // RTT first, on the idle path: after the 64-byte flood a userspace relay still drains its socket buffers.
  const rttMs = await attempt('ping', () => pingAverageMs(bed, path));
  const tcp1 = await attempt('tcp 1 stream', () => iperf(bed, path, [], TCP_SECONDS, clockTicks));
  const tcp4 = await attempt('tcp 4 streams', () => iperf(bed, path, ['-P', '4'], TCP_SECONDS, clockTicks));
  const udp = await attempt('udp 64 B', () => iperf(bed, path, ['-u', '-l', String(UDP_DATAGRAM_BYTES), '-b', '0'], UDP_SECONDS, clockTicks));
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const gigabytes = tcp1 ? bytesSentInWholeRun(tcp1.json) / 1e9 : NaN;
  return {
    sample: {
      tcp1Gbps: tcp1 ? receivedGbps(tcp1.json) : NaN,
      tcp4Gbps: tcp4 ? receivedGbps(tcp4.json) : NaN,
      udpSmallKpps: udp ? receivedKpps(udp.json) : NaN,
      rttMs: rttMs ?? NaN,
      cpuSecondsPerGB: tcp1 && gigabytes > 0 ? tcp1.busySeconds / gigabytes : NaN,
    },
    errors,
  };
}

/** Waits until host 1 reaches the target over the path (routes follow leases asynchronously), bounded. */
export async function waitReachable(bed: Testbed, path: ReadyPath, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${path.target} reachable over the path`, async () => (await bed.exec(path.client, ['ping', '-c', '1', '-W', '1', path.target]), true), timeoutMs);
}
