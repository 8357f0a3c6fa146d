import { StoppedError, errorMessage } from '../errors.js';
import { ETCD_LOOP_GRACE_MS, LoopPulse } from '../health/loop-pulse.js';
import { log } from '../log.js';
import type { RetrySchedule } from '../retry.js';
import type { RegistryWatch } from './etcd-registry.js';
import { retryEtcd } from './etcd-retry.js';
import type { EtcdLoop, EtcdStatus } from './etcd-status.js';

export interface ResilientWatchOptions {
  readonly loop: EtcdLoop;
  readonly schedule: RetrySchedule;
  readonly status?: EtcdStatus;
  /** Reads the current state and returns its revision (and applies it; a re-list publishes what changed). */
  list(): Promise<string>;
  /** Watches from after `revision`; `onError` fires when etcd3 cannot resume it by itself. */
  watch(revision: string, onError: (err: Error) => void): Promise<RegistryWatch>;
  /** The loop's name in a liveness failure, e.g. `peer watch`. */
  readonly livenessName: string;
}

/**
 * A snapshot followed by a watch, kept alive: when the watch is lost (compacted past our revision, cancelled by
 * etcd, or etcd unreachable while re-creating it) it lists again and watches from the new snapshot, through the
 * daemon's one retry policy. Never rejects after start().
 */
export class ResilientWatch {
  private current: RegistryWatch | undefined;
  private readonly stopping = new AbortController();
  private reconnecting = false;
  /** Due at every attempt to list and watch, at rest while the watch runs: an attempt that hangs fails liveness. */
  readonly pulse: LoopPulse;

  constructor(private readonly opts: ResilientWatchOptions) {
    this.pulse = new LoopPulse(opts.livenessName, ETCD_LOOP_GRACE_MS);
  }

  /** The first snapshot and watch, retried while etcd is unreachable; refusals are retried only if `retryDenied`. */
  async start({ retryDenied = false } = {}): Promise<void> {
    await this.connect(retryDenied);
  }

  /** Bounded: the watch close waits at most a second, whatever etcd does. */
  async stop(): Promise<void> {
    this.stopping.abort();
    const watch = this.current;
    this.current = undefined;
    await watch?.close();
  }

  private async connect(retryDenied: boolean): Promise<void> {
    const { loop, schedule, status } = this.opts;
    await retryEtcd(
      async () => {
        this.pulse.beat(0);
        await this.current?.close();
        this.current = undefined;
        const revision = await this.opts.list();
        this.current = await this.opts.watch(revision, (err) => this.lost(err));
        // flannel logs the same at -v=4 ("watching subnets starting from rev"): where a missed event would have gone.
        log.debug({ event: 'watch-started', loop, revision }, `watching etcd (${loop}) from after revision ${revision}`);
        this.pulse.rest();
        // stop() ran while the watch was being created: it could not close this one.
        if (this.stopping.signal.aborted) await this.stop();
      },
      {
        loop,
        schedule,
        status,
        signal: this.stopping.signal,
        retryDenied,
        onRetry: (err, attempt, retryInMs) => {
          this.pulse.beat(retryInMs);
          log.warn({ event: 'watch-retry', loop, attempt, retryInMs }, `cannot list and watch etcd (${loop}): ${errorMessage(err)}`);
        },
      },
    );
  }

  private lost(err: Error): void {
    if (this.stopping.signal.aborted || this.reconnecting) return;
    this.opts.status?.failed(this.opts.loop, err);
    log.warn({ event: 'watch-lost', loop: this.opts.loop }, `etcd watch lost (${this.opts.loop}), listing again: ${errorMessage(err)}`);
    this.reconnecting = true;
    this.connect(true)
      .catch((e) => {
        // Every etcd error is retried; what gets here is a stop, or a bug worth a line.
        if (!(e instanceof StoppedError)) log.error({ event: 'watch-failed', loop: this.opts.loop }, `etcd watch (${this.opts.loop}) stopped: ${errorMessage(e)}`);
      })
      .finally(() => (this.reconnecting = false));
  }
}
