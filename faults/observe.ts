import type { Testbed } from '../testbed/netns.js';
import { parseIperfJson, receivedGbps } from '../bench/iperf3-json.js';

/** Prometheus text as `name{labels}` (or `name`) → value. */
export function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) values.set(match[1], Number(match[2]));
  }
  return values;
}

/** The sum of every series of `name`, whatever its labels (e.g. all drop reasons). */
export function sumOf(metrics: Map<string, number>, name: string): number {
  let total = 0;
  for (const [series, value] of metrics) if (series === name || series.startsWith(`${name}{`)) total += value;
  return total;
}

export interface PingResult {
  readonly transmitted: number;
  readonly received: number;
}

/**
 * Pings `to` from namespace `ns` every `intervalS` for about `seconds`, resolving with the totals. A count, not a
 * deadline (-w): ping then waits up to a second for the last reply instead of counting a request still in flight at
 * the deadline as lost.
 */
export function pingFor(bed: Testbed, ns: string, to: string, seconds: number, intervalS = 0.2): Promise<PingResult> {
  const count = Math.max(1, Math.round(seconds / intervalS));
  const child = bed.spawn(ns, ['ping', '-n', '-q', '-i', String(intervalS), '-c', String(count), '-W', '1', to]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return inBackground(
    new Promise((resolve, reject) =>
      child.on('exit', () => {
        const match = /(\d+) packets transmitted, (\d+) received/.exec(out);
        if (match) resolve({ transmitted: Number(match[1]), received: Number(match[2]) });
        else reject(new Error(`ping ${to} from ${ns} printed no summary: ${out}`));
      }),
    ),
  );
}

/**
 * Traffic runs while a scenario does other things, and is awaited later. If the scenario fails (or is interrupted)
 * before that, cleanup stops the traffic and its promise rejects with nobody awaiting it: that must not crash the
 * suite, so the rejection is marked handled here. Awaiting the promise still rejects.
 */
function inBackground<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** iperf3's default port, on which the server below listens. */
const IPERF_PORT = 5201;

/** One TCP stream from `clientNs` to an iperf3 server started in `serverNs` on `serverIp`, for `seconds`: Gbit/s received. */
export function iperfFor(bed: Testbed, serverNs: string, clientNs: string, serverIp: string, seconds: number): Promise<number> {
  return inBackground(iperfRun(bed, serverNs, clientNs, serverIp, seconds));
}

async function iperfRun(bed: Testbed, serverNs: string, clientNs: string, serverIp: string, seconds: number): Promise<number> {
  const server = bed.spawn(serverNs, ['iperf3', '-s', '-1', '-B', serverIp]);
  try {
    await bed.waitForListener(serverNs, IPERF_PORT);
    const { stdout } = await bed.exec(clientNs, ['iperf3', '-c', serverIp, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
    // A report without a received figure gives NaN, which fails the scenarios' `gbits > 0`; iperf3's own errors throw.
    return receivedGbps(parseIperfJson(stdout));
  } finally {
    server.kill('SIGKILL');
  }
}

/** UDP counters of the kernel in a namespace (/proc/net/snmp): datagrams it dropped before any socket read them. */
export async function kernelUdpDrops(bed: Testbed, ns: string): Promise<number> {
  const { stdout } = await bed.exec(ns, ['cat', '/proc/net/snmp']);
  const [names, values] = stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const row = Object.fromEntries(names.split(/\s+/).slice(1).map((n, i) => [n, Number(values.split(/\s+/)[i + 1])]));
  return row.InErrors; // receive buffer full, out of memory, bad checksum: each one also counted in InErrors
}
