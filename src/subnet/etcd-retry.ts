import { handleWhen, retry } from 'cockatiel';
import { EtcdAccessDeniedError, EtcdError, StoppedError } from '../errors.js';
import { log } from '../log.js';
import { backoffOf, type RetrySchedule } from '../retry.js';
import type { EtcdLoop, EtcdStatus } from './etcd-status.js';

export interface EtcdRetryOptions {
  readonly loop: EtcdLoop;
  readonly schedule: RetrySchedule;
  /** Aborting rejects at once with StoppedError; an attempt in flight is abandoned, bounded by its own deadline. */
  readonly signal: AbortSignal;
  readonly status?: EtcdStatus;
  /**
   * Whether to keep retrying while etcd refuses us. A running daemon does (the operator may fix the role, and the
   * datapath keeps forwarding meanwhile); at startup a refusal is final, so that it is reported at once.
   */
  readonly retryDenied: boolean;
  /** Stop retrying an unreachable etcd after this long (startup: a typo in --etcd-endpoints fails fast). */
  readonly giveUpAfterMs?: number;
  /** Other errors to wait out, e.g. a full network. */
  readonly alsoRetry?: (err: Error) => boolean;
  /** Called before each wait, to log what failed and when the next attempt comes. */
  readonly onRetry?: (err: Error, attempt: number, delayMs: number) => void;
}

/**
 * The one retry policy of every loop that talks to etcd (startup, acquisition, renewal, watches): cockatiel's retry
 * with exponential backoff, deciding by the kind of error (errors.ts) whether waiting can help, and reporting
 * failures and recoveries to EtcdStatus.
 */
export async function retryEtcd<T>(fn: () => Promise<T>, opts: EtcdRetryOptions): Promise<T> {
  const { loop, signal, status } = opts;
  const started = Date.now();
  const worthRetrying = (err: Error): boolean => {
    if (signal.aborted || err instanceof StoppedError) return false;
    if (err instanceof EtcdAccessDeniedError) return opts.retryDenied;
    if (err instanceof EtcdError) return opts.giveUpAfterMs === undefined || Date.now() - started < opts.giveUpAfterMs;
    return opts.alsoRetry?.(err) ?? false;
  };
  const policy = retry(handleWhen(worthRetrying), {
    maxAttempts: Infinity,
    backoff: backoffOf(opts.schedule),
  });
  policy.onRetry((reason) => {
    if (!('error' in reason)) return;
    status?.failed(loop, reason.error);
    opts.onRetry?.(reason.error, reason.attempt, Math.round(reason.delay));
  });
  policy.onGiveUp((reason) => {
    if ('error' in reason) status?.count(reason.error);
  });
  const attempt = async ({ attempt: retries }: { attempt: number }) => {
    if (signal.aborted) throw new StoppedError(`stopped during etcd ${loop}`);
    // At debug level: which loop is waiting on etcd right now, for tests that act while a request is in flight.
    log.debug({ event: 'etcd-request', loop, attempt: retries + 1 }, `etcd ${loop}: attempt ${retries + 1}`);
    return fn();
  };
  const result = await untilAborted(policy.execute(attempt, signal), signal, loop);
  status?.succeeded(loop);
  return result;
}

/** Settles with `work`, or rejects with StoppedError as soon as `signal` aborts (work's outcome is then ignored). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new StoppedError(`stopped during ${what}`));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
