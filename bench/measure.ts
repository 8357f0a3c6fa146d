import { errorMessage } from '../src/errors.js';
import { sleep } from '../testbed/interrupt.js';
import type { Testbed } from '../testbed/netns.js';
import { waitFor } from '../testbed/netns.js';
import { terminate } from '../testbed/proc.js';
import { readBusyCpuSeconds } from './cpu-time.js';
import type { Sample } from './figures.js';
import { bytesSentInWholeRun, parseIperfJson, receivedGbps, receivedKpps, type IperfJson } from './iperf3-json.js';
import { OMIT_SECONDS, PING_COUNT, PING_INTERVAL_SECONDS, SETTLE_MS, TCP_SECONDS, UDP_DATAGRAM_BYTES, UDP_SECONDS } from './method.js';
import type { ReadyPath } from './paths.js';

let nextPort = 5300;

/** The three iperf3 runs of a sample: what each is called in errors, its extra client arguments, its counted seconds. */
export const IPERF_RUNS = {
  tcp1: { what: 'tcp 1 stream', args: [], seconds: TCP_SECONDS },
  tcp4: { what: 'tcp 4 streams', args: ['-P', '4'], seconds: TCP_SECONDS },
  udpSmall: { what: 'udp 64 B', args: ['-u', '-l', String(UDP_DATAGRAM_BYTES), '-b', '0'], seconds: UDP_SECONDS },
} as const satisfies Record<string, IperfRun>;

export interface IperfRun {
  readonly what: string;
  readonly args: readonly string[];
  readonly seconds: number;
}

/**
 * The argv of one iperf3 measurement to `target`:`port`. The server serves one client and exits (`-1`), in the
 * foreground (never `-D`) so that killing it is enough; the client reports JSON and leaves the first OMIT_SECONDS
 * (slow start) out of its figures.
 */
export function iperfArgv(target: string, port: number, run: IperfRun): { server: string[]; client: string[] } {
  return {
    server: ['iperf3', '-s', '-1', '-B', target, '-p', String(port)],
    client: ['iperf3', '-c', target, '-p', String(port), '-t', String(run.seconds), '-O', String(OMIT_SECONDS), '-J', ...run.args],
  };
}

/**
 * One iperf3 run: a one-off server on host 2, bound to the target, and the client on host 1. `busySeconds` is the
 * machine's busy CPU time from the moment the server listens until the client exits, so the server's start-up and
 * the wait for it stay out of the window. The server is killed (and reaped) whatever happens.
 */
async function iperf(bed: Testbed, path: ReadyPath, run: IperfRun, clockTicks: number): Promise<{ json: IperfJson; busySeconds: number }> {
  const port = nextPort++;
  const argv = iperfArgv(path.target, port, run);
  const server = bed.spawn(path.server, argv.server, { stdio: 'ignore' });
  try {
    await bed.waitForListener(path.server, port);
    const cpuBefore = await readBusyCpuSeconds(clockTicks);
    const stdout = await bed.exec(path.client, argv.client, { timeoutMs: (run.seconds + OMIT_SECONDS + 20) * 1000 }).then(
      (r) => r.stdout,
      // iperf3 -J exits 1 with its reason in the JSON it prints; parseIperfJson turns that into the error.
      (err: { stdout?: string; message: string }) => err.stdout || Promise.reject(err),
    );
    const busySeconds = (await readBusyCpuSeconds(clockTicks)) - cpuBefore;
    return { json: parseIperfJson(stdout), busySeconds };
  } finally {
    await terminate(server, 'SIGKILL');
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
      errors.push(`${what}: ${errorMessage(err)}`);
      return undefined;
    }
  };
  // RTT first, on the idle path: after the 64-byte flood a userspace relay still drains its socket buffers.
  const rttMs = await attempt('ping', () => pingAverageMs(bed, path));
  const measure = (run: IperfRun) => attempt(run.what, () => iperf(bed, path, run, clockTicks));
  const tcp1 = await measure(IPERF_RUNS.tcp1);
  const tcp4 = await measure(IPERF_RUNS.tcp4);
  const udp = await measure(IPERF_RUNS.udpSmall);
  await sleep(SETTLE_MS);
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
  await waitFor(`${path.target} reachable over the path`, async () => (await bed.ping(path.client, path.target)).ok, timeoutMs);
}
