import { describe, expect, it } from 'vitest';
import { EtcdAuthError, EtcdPermissionError, EtcdUnavailableError, FlannelError, StoppedError, SubnetsExhaustedError } from '../../src/errors.js';
import { retryEtcd, type EtcdRetryOptions } from '../../src/subnet/etcd-retry.js';
import { EtcdStatus } from '../../src/subnet/etcd-status.js';
import { loggedEvents } from '../helpers/log-capture.js';

const FAST = { initialDelayMs: 1, maxDelayMs: 5 };
const denied = () => new EtcdPermissionError('etcd denied user "ro" permission to write /k (etcdserver: permission denied)', 'ro', '/k');

/** fn failing with each error of `errors` in turn, then answering 'ok'; counts its calls. */
function failing(...errors: Error[]) {
  const calls = { n: 0 };
  const fn = async () => {
    const err = errors[calls.n++];
    if (err) throw err;
    return 'ok';
  };
  return { fn, calls };
}

function options(extra: Partial<EtcdRetryOptions> = {}): EtcdRetryOptions {
  return { loop: 'renewal', schedule: FAST, signal: new AbortController().signal, retryDenied: false, ...extra };
}

describe('the etcd retry policy', () => {
  it('logs each attempt at debug level before sending it, naming the loop', async () => {
    const seen: unknown[] = [];
    loggedEvents(['debug'], seen);
    const { fn } = failing(new EtcdUnavailableError('down'));
    const request = () => (seen.push('request'), fn());
    await retryEtcd(request, options({ loop: 'startup' }));
    expect(seen).toEqual([{ event: 'etcd-request', loop: 'startup', attempt: 1 }, 'request', { event: 'etcd-request', loop: 'startup', attempt: 2 }, 'request']);
  });

  it('retries an unreachable etcd until it answers, counting each failure', async () => {
    const status = new EtcdStatus();
    const { fn, calls } = failing(new EtcdUnavailableError('down'), new EtcdUnavailableError('down'));
    expect(await retryEtcd(fn, options({ status }))).toBe('ok');
    expect(calls.n).toBe(3);
    expect(status.errors()).toEqual({ unavailable: 2, denied: 0, other: 0 });
  });

  it('at startup, gives up on an unreachable etcd after giveUpAfterMs', async () => {
    const { fn, calls } = failing(...Array.from({ length: 1000 }, () => new EtcdUnavailableError('down')));
    await expect(retryEtcd(fn, options({ giveUpAfterMs: 50 }))).rejects.toThrow(EtcdUnavailableError);
    expect(calls.n).toBeGreaterThan(1);
    expect(calls.n).toBeLessThan(1000);
  });

  it('at startup, a refusal is thrown at once, without a retry', async () => {
    const { fn, calls } = failing(new EtcdAuthError('bad password', 'flannel', '/k'));
    await expect(retryEtcd(fn, options({ retryDenied: false }))).rejects.toThrow(EtcdAuthError);
    expect(calls.n).toBe(1);
  });

  it('while running, a refusal is retried and reported as a state: denied until the loop succeeds again', async () => {
    const status = new EtcdStatus();
    let seen: string | undefined;
    const { fn } = failing(denied(), denied());
    const result = retryEtcd(fn, options({ retryDenied: true, status, onRetry: () => (seen ??= status.denial()?.message) }));
    expect(await result).toBe('ok');
    expect(seen).toMatch(/permission to write \/k/);
    expect(status.denial()).toBeUndefined();
    expect(status.errors().denied).toBe(2);
  });

  it('retries other errors only when the loop says so (a full network), and throws the rest', async () => {
    const full = failing(new SubnetsExhaustedError('full'));
    expect(await retryEtcd(full.fn, options({ alsoRetry: (e) => e instanceof SubnetsExhaustedError }))).toBe('ok');
    const bug = failing(new FlannelError('bug'));
    await expect(retryEtcd(bug.fn, options({ alsoRetry: (e) => e instanceof SubnetsExhaustedError }))).rejects.toThrow('bug');
    expect(bug.calls.n).toBe(1);
  });

  it('an abort rejects with StoppedError at once, even in the middle of a long backoff', async () => {
    const abort = new AbortController();
    const { fn } = failing(...Array.from({ length: 100 }, () => new EtcdUnavailableError('down')));
    const pending = retryEtcd(fn, options({ signal: abort.signal, schedule: { initialDelayMs: 60_000, maxDelayMs: 60_000 } }));
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    abort.abort();
    await expect(pending).rejects.toThrow(StoppedError);
    expect(Date.now() - started).toBeLessThan(100);
  });
});
