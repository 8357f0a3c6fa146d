import { EtcdAccessDeniedError, EtcdError, EtcdUnavailableError } from '../errors.js';
import { log } from '../log.js';

/** The daemon's loops that talk to etcd, as named in logs (`loop=`) and readiness reasons. */
export type EtcdLoop = 'startup' | 'acquisition' | 'renewal' | 'watch' | 'config-watch';

/** What kind of failure an etcd error is, as counted by `flannel_etcd_errors_total{kind}`. */
export type EtcdErrorKind = 'unavailable' | 'denied' | 'other';

function etcdErrorKind(err: EtcdError): EtcdErrorKind {
  if (err instanceof EtcdUnavailableError) return 'unavailable';
  if (err instanceof EtcdAccessDeniedError) return 'denied';
  return 'other';
}

/**
 * How etcd has been treating this daemon: failures counted by kind, and which loops etcd currently refuses
 * (wrong credentials, a role without the permission). A refusal is logged once when it starts and once when it
 * ends, not on every retry, and makes the daemon unready until the loop that met it succeeds again.
 */
export class EtcdStatus {
  private readonly counts: Record<EtcdErrorKind, number> = { unavailable: 0, denied: 0, other: 0 };
  private readonly denials = new Map<EtcdLoop, EtcdAccessDeniedError>();

  /** Counts a failed request whose error goes back to the caller (startup reports it as its one line). */
  count(err: unknown): void {
    if (err instanceof EtcdError) this.counts[etcdErrorKind(err)]++;
  }

  /** Counts a failed request of a loop that goes on retrying; a refusal starts (or changes) that loop's denial. */
  failed(loop: EtcdLoop, err: unknown): void {
    this.count(err);
    if (!(err instanceof EtcdAccessDeniedError)) return;
    const previous = this.denials.get(loop);
    this.denials.set(loop, err);
    if (previous?.message === err.message) return;
    log.error(
      { event: 'etcd-access-denied', loop, user: err.user ?? null, key: err.key },
      `${err.message}; the datapath keeps forwarding, and ${loop} is retried until an operator fixes the etcd user or role`,
    );
  }

  succeeded(loop: EtcdLoop): void {
    if (!this.denials.delete(loop)) return;
    log.info({ event: 'etcd-access-restored', loop }, `etcd allows ${loop} again`);
  }

  /** Failed etcd requests so far, by kind. */
  errors(): Readonly<Record<EtcdErrorKind, number>> {
    return { ...this.counts };
  }

  /** Why etcd refuses us right now, or undefined when no loop is refused. */
  denial(): EtcdAccessDeniedError | undefined {
    return this.denials.values().next().value;
  }
}
