import { ExponentialBackoff } from 'cockatiel';

/** Exponential backoff with jitter between attempts, from `initialDelayMs` up to `maxDelayMs`. */
export interface RetrySchedule {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** The longest pause between retries unless FLANNELD_RETRY_INTERVAL_MS says otherwise. */
export const DEFAULT_RETRY_INTERVAL_MS = 5_000;

/** Backoff from 100 ms (or `maxDelayMs`, if shorter) up to `maxDelayMs`. */
export function retrySchedule(maxDelayMs: number): RetrySchedule {
  return { initialDelayMs: Math.min(100, maxDelayMs), maxDelayMs };
}

/** The schedule of every loop that is given none: etcd retries, a full network, failed backend restarts. */
export const DEFAULT_RETRY: RetrySchedule = retrySchedule(DEFAULT_RETRY_INTERVAL_MS);

/** The schedule as cockatiel's backoff: `next()` of it gives the first delay, and so on. */
export function backoffOf(schedule: RetrySchedule): ExponentialBackoff<unknown> {
  return new ExponentialBackoff({ initialDelay: schedule.initialDelayMs, maxDelay: schedule.maxDelayMs });
}
