import { sleep } from './interrupt.js';
import type { OverlayCluster, OverlayHost } from './overlay.js';

export interface RestartLoss {
  /** Echo requests sent up to the last one that had time to be answered. */
  readonly sent: number;
  readonly lost: number;
  readonly intervalMs: number;
  /** How long ping ran; on a busy machine it sends less often than asked, so outages are estimated from this. */
  readonly durationMs: number;
  /** From the stop signal to the new daemon's readiness event. */
  readonly restartMs: number;
}

export interface RestartProbeOptions {
  /** Ping interval; 10 ms unless given. */
  readonly intervalMs?: number;
  /** Logged by the new daemon once its network carries traffic again (e.g. `peers-reconciled`). */
  readonly readyEvent?: string;
  /** Runs while flanneld is down (inspect what it left behind, change etcd). */
  readonly whileDown?: () => Promise<void>;
}

/** Never more echo requests than this, whatever happens (bounds the run at 60 s with the default interval). */
const MAX_PINGS = 6000;
const SETTLE_MS = 500;

/**
 * Pings from one host's container to another's every 10 ms while `restarted`'s flanneld is stopped with SIGTERM and
 * started again, and counts the echo requests that got no reply. A request sent in the last 100 ms before ping is
 * stopped is not counted either way, as its reply may still be on its way.
 */
export async function pingThroughRestart(cluster: OverlayCluster, from: OverlayHost, to: OverlayHost, restarted: OverlayHost, opts: RestartProbeOptions = {}): Promise<RestartLoss> {
  const intervalMs = opts.intervalMs ?? 10;
  const ping = cluster.bed.spawn(from.container!.ns, ['ping', '-n', '-i', String(intervalMs / 1000), '-c', String(MAX_PINGS), to.container!.ip]);
  let out = '';
  ping.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => ping.once('exit', () => resolve()));
  const pingStarted = Date.now();
  await sleep(SETTLE_MS);
  const started = Date.now();
  await cluster.restartDaemon(restarted, { whileDown: opts.whileDown });
  if (opts.readyEvent) await restarted.daemon.waitForEvent(opts.readyEvent);
  const restartMs = Date.now() - started;
  await sleep(SETTLE_MS);
  ping.kill('SIGINT');
  await exited;
  const durationMs = Date.now() - pingStarted;
  const transmitted = Number(/(\d+) packets transmitted/.exec(out)?.[1]);
  if (!Number.isFinite(transmitted)) throw new Error(`ping printed no summary:\n${out.slice(-2000)}`);
  const answered = new Set([...out.matchAll(/bytes from .*icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
  const sent = Math.max(0, transmitted - Math.ceil(100 / intervalMs));
  let lost = 0;
  for (let seq = 1; seq <= sent; seq++) if (!answered.has(seq)) lost++;
  return { sent, lost, intervalMs, durationMs, restartMs };
}
