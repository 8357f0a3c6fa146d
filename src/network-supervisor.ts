import { setTimeout as sleep } from 'node:timers/promises';
import type { IBackoff } from 'cockatiel';
import type { Backend, BackendNetwork } from './backend/backend.js';
import { errorMessage, systemErrorInfo } from './errors.js';
import { LoopPulse } from './health/loop-pulse.js';
import { formatIpv4Net, netEquals } from './ip/ipv4.js';
import { log } from './log.js';
import { backoffOf, type RetrySchedule } from './retry.js';
import type { Lease } from './subnet/lease.js';

export interface NetworkSupervisorOptions {
  readonly backend: Backend;
  /** Runs after each start, before the network counts as running: peers, extensions, the subnet file. */
  readonly prepare: (network: BackendNetwork, lease: Lease) => Promise<void>;
  /** How often the running network's failure() is read. */
  readonly checkIntervalMs: number;
  /** Backoff between failed restarts; the first restart after a failure is immediate. */
  readonly retry: RetrySchedule;
}

/** Whether the network runs, and if not, why. */
export interface NetworkState {
  readonly running: boolean;
  readonly reason?: string;
}

// How long stop() waits for a start in progress before closing what is there.
const STOP_WAIT_MS = 3_000;
// The loop may be this many check intervals (and at least LIVENESS_MIN_MS) late before liveness calls it stuck.
const LIVENESS_INTERVALS = 10;
const LIVENESS_MIN_MS = 15_000;

/**
 * Keeps the backend network running for the current lease: one loop that reads the network's failure() (a deleted
 * flannel0, a dead socket), closes a failed network and starts it again with backoff, and moves it to a new subnet
 * when the lease moves. Every start and restart happens in this loop, one at a time, and its failures are logged
 * and retried, never thrown: nothing here can end the process.
 */
export class NetworkSupervisor {
  private current: { network: BackendNetwork; lease: Lease } | undefined;
  private wanted: Lease | undefined;
  private problem: string | undefined = 'not started yet';
  private backoff: IBackoff<unknown> | undefined;
  private nextAttemptAt = 0;
  private attempts = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Datapath failures seen, for `flannel_datapath_failures_total`. */
  failures = 0;
  /** Beats at every completed turn, for liveness. */
  readonly pulse: LoopPulse;

  constructor(private readonly opts: NetworkSupervisorOptions) {
    this.pulse = new LoopPulse('network supervision', Math.max(LIVENESS_MIN_MS, LIVENESS_INTERVALS * opts.checkIntervalMs));
  }

  get network(): BackendNetwork | undefined {
    return this.current?.network;
  }

  /** Read at every /readyz: a datapath that just stopped is reported at once, not at the loop's next turn. */
  state(): NetworkState {
    const failure = this.current?.network.failure();
    if (failure) return { running: false, reason: `the datapath stopped: ${failure.message}` };
    return this.problem === undefined && this.current ? { running: true } : { running: false, reason: this.problem ?? 'not started yet' };
  }

  /** The first start, at daemon startup: a failure here is a setup error for the operator, and is thrown. */
  async startFirst(lease: Lease): Promise<void> {
    this.wanted = lease;
    await this.open(lease);
    this.loop = this.run();
  }

  /** The lease to run the network for. A new subnet restarts the network; the same subnet only updates the lease. */
  follow(lease: Lease): void {
    this.wanted = lease;
    if (this.current && netEquals(this.current.lease.subnet, lease.subnet)) this.current = { ...this.current, lease };
    else this.nudge();
  }

  /** Ends the loop (waiting a bounded time for a start in progress) and closes the network. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.nudge();
    await Promise.race([this.loop, sleep(STOP_WAIT_MS, undefined, { ref: false })]);
    await this.close();
  }

  private nudge(): void {
    this.nextAttemptAt = Math.min(this.nextAttemptAt, Date.now());
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.turn();
      } catch (err) {
        log.error({ event: 'network-supervisor-error' }, `network supervision failed: ${errorMessage(err)}`);
      }
      this.pulse.beat(this.opts.checkIntervalMs);
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.checkIntervalMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private async turn(): Promise<void> {
    const failure = this.current?.network.failure();
    if (failure) {
      this.failures++;
      this.problem = `the datapath stopped: ${failure.message}`;
      log.error({ event: 'datapath-failed', ...systemErrorInfo(failure) }, `${this.problem}; restarting the backend`);
      await this.close();
    }
    const wanted = this.wanted;
    if (!wanted || this.stopped) return;
    if (this.current && netEquals(this.current.lease.subnet, wanted.subnet)) return;
    if (Date.now() < this.nextAttemptAt) return;
    await this.close();
    this.attempts++;
    try {
      await this.open(wanted);
      log.info({ event: 'network-restarted', subnet: formatIpv4Net(wanted.subnet), attempts: this.attempts }, 'backend network running again');
      this.attempts = 0;
      this.backoff = undefined;
    } catch (err) {
      this.backoff = this.backoff ? this.backoff.next(undefined) : backoffOf(this.opts.retry).next();
      const retryInMs = Math.round(this.backoff.duration);
      this.nextAttemptAt = Date.now() + retryInMs;
      this.problem = `cannot start the network: ${errorMessage(err)}`;
      log.warn({ event: 'network-start-failed', attempt: this.attempts, retryInMs }, this.problem);
    }
  }

  private async open(lease: Lease): Promise<void> {
    const network = await this.opts.backend.startNetwork(lease);
    if (this.stopped) {
      // stop() ran meanwhile and closed what it saw; this one is ours to close.
      await network.close();
      return;
    }
    this.current = { network, lease };
    try {
      await this.opts.prepare(network, lease);
    } catch (err) {
      await this.close();
      throw err;
    }
    this.problem = undefined;
  }

  private async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (!current) return;
    this.problem ??= 'restarting';
    await current.network.close().catch((err) => {
      log.warn({ event: 'network-close-failed' }, `closing the backend network failed: ${errorMessage(err)}`);
    });
  }
}
