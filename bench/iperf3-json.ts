// What a figure is, read from iperf3's -J output (iperf 3.12). Pure, so the parsing is unit-tested on real output.

interface IperfSum {
  readonly bytes?: number;
  readonly seconds?: number;
  readonly bits_per_second?: number;
  readonly omitted?: boolean;
}

export interface IperfJson {
  readonly error?: string;
  readonly start?: { readonly test_start?: { readonly blksize?: number; readonly omit?: number } };
  readonly intervals?: readonly { readonly sum?: IperfSum }[];
  readonly end?: { readonly sum_sent?: IperfSum; readonly sum_received?: IperfSum };
}

export class IperfError extends Error {}

/** Parses iperf3 -J output; iperf3 reports its own failures ("unable to connect ...") in an `error` field. */
export function parseIperfJson(stdout: string): IperfJson {
  let json: IperfJson;
  try {
    json = JSON.parse(stdout) as IperfJson;
  } catch {
    throw new IperfError(`iperf3 printed no JSON: ${stdout.trim().slice(0, 200) || '(nothing)'}`);
  }
  if (json.error) throw new IperfError(`iperf3: ${json.error}`);
  return json;
}

/** TCP goodput as the receiver counted it, in Gbit/s, over the measured seconds (the -O seconds excluded). */
export function receivedGbps(json: IperfJson): number {
  const bps = json.end?.sum_received?.bits_per_second;
  return typeof bps === 'number' ? bps / 1e9 : NaN;
}

/**
 * Every byte the client sent in its whole run, the omitted first second included: the denominator for CPU time
 * taken over the same whole run. (end.sum_sent leaves the omitted intervals out.)
 */
export function bytesSentInWholeRun(json: IperfJson): number {
  const intervals = json.intervals ?? [];
  if (intervals.length === 0) return NaN;
  return intervals.reduce((total, i) => total + (i.sum?.bytes ?? 0), 0);
}

/**
 * UDP datagrams the receiver got per second, in thousands: received bytes / datagram size / seconds. Not
 * packets − lost_packets: with -O, iperf 3.12 counts the omitted second's datagrams as lost, so "lost" can
 * exceed "packets" (seen here: 800812 lost of 704640).
 */
export function receivedKpps(json: IperfJson): number {
  const received = json.end?.sum_received;
  const size = json.start?.test_start?.blksize;
  if (!received?.bytes || !received.seconds || !size) return NaN;
  return received.bytes / size / received.seconds / 1000;
}
