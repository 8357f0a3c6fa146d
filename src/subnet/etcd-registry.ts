import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConsecutiveBreaker, circuitBreaker, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCCancelledError,
  isRecoverableError,
  type IKeyValue,
  type IOptions,
  type Watcher,
} from 'etcd3';
import {
  EtcdAuthError,
  EtcdError,
  EtcdPermissionError,
  EtcdRequestError,
  EtcdUnavailableError,
  FileAccessError,
  errorMessage,
} from '../errors.js';
import { log } from '../log.js';
import type { Ipv4Net } from '../ip/ipv4.js';
import { parseLeaseValue, parseSubnetKey, subnetKey } from './subnet-key.js';
import type { Lease, LeaseAttrs, StoredLease } from './lease.js';

export interface EtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly username?: string;
  readonly password?: string;
}

/** A change under `<prefix>/subnets/` as the watch saw it. */
export type RegistryEvent =
  | { readonly type: 'put'; readonly lease: StoredLease; readonly revision: string }
  | { readonly type: 'delete'; readonly subnet: Ipv4Net; readonly ipv6Subnet?: string; readonly revision: string };

export interface RegistryWatch {
  /** Bounded: a watch etcd no longer answers for (it cancelled it, or it hangs) is dropped after a short wait. */
  close(): Promise<void>;
}

/** The network config as read, and the revision to watch it from. */
export interface ConfigSnapshot {
  /** The raw JSON at `<prefix>/config`, or undefined while it does not exist. */
  readonly raw: string | undefined;
  readonly revision: string;
}

/**
 * The narrow set of etcd operations flanneld needs (flannel's `subnet.Registry`). Everything above it
 * (allocation, renewal, watching peers) is policy and lives in the lease manager and lease watcher.
 */
export interface Registry {
  readonly prefix: string;
  /** `<prefix>/config`, the network config's key. */
  readonly configKey: string;
  /** `<prefix>/subnets/`, under which every lease's key lies. */
  readonly subnetsPrefix: string;
  getNetworkConfig(): Promise<ConfigSnapshot>;
  /** Every lease under `<prefix>/subnets/` and the revision of that snapshot. Unparsable values are skipped. */
  getSubnets(): Promise<{ leases: StoredLease[]; revision: string }>;
  getSubnet(subnet: Ipv4Net): Promise<StoredLease | undefined>;
  /** Creates the key only if absent. Returns the lease, or undefined if another host got there first. */
  createSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined>;
  /**
   * Rewrites the key with a fresh etcd lease (TTL 0 keeps a reservation without one), only if nothing wrote it since
   * `modRevision` (the StoredLease read before). Returns the lease, or undefined if the key was deleted or written
   * meanwhile: it may be another host's now, and is never overwritten.
   */
  updateSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number, modRevision: string): Promise<Lease | undefined>;
  /** Deletes the key of `subnet`, or of its dual-stack form when `ipv6Subnet` is given. */
  deleteSubnet(subnet: Ipv4Net, ipv6Subnet?: string): Promise<void>;
  /**
   * Watches changes after `afterRevision`. `onError` fires when the watch is lost for good (a compacted revision,
   * or etcd cancelled it, e.g. for an auth token that became invalid): the caller lists again and re-creates it.
   */
  watchSubnets(
    afterRevision: string,
    onEvent: (event: RegistryEvent) => void,
    onError: (err: Error) => void,
  ): Promise<RegistryWatch>;
  /** Watches `<prefix>/config` after `afterRevision`: its new raw value, undefined when deleted. */
  watchNetworkConfig(afterRevision: string, onChange: (raw: string | undefined) => void, onError: (err: Error) => void): Promise<RegistryWatch>;
  close(): void;
}

// How long one etcd call may take before we call etcd unreachable for that attempt.
const CALL_DEADLINE_MS = 5_000;
// How long a failed endpoint is skipped before one request tries it again.
const ENDPOINT_COOL_DOWN_MS = 1_000;
// A watch cancel waits for etcd's confirmation; one that does not come within this is abandoned.
const WATCH_CLOSE_MS = 1_000;

function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FileAccessError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

/** Errors that say this endpoint is down or hung. A cancel is ours (a closed watch stream), not the endpoint's fault. */
function endpointFailed(err: Error): boolean {
  return isRecoverableError(err) && !(err instanceof GRPCCancelledError);
}

function etcdClientOptions(opts: EtcdOptions): IOptions {
  const hosts = opts.endpoints.map((e) => e.trim()).filter(Boolean);
  const options: IOptions = {
    hosts,
    dialTimeout: 3_000,
    // Failover between endpoints, as etcdctl does: one failure opens that endpoint's breaker, and the same request is
    // retried at once on the next endpoint (etcd3 skips endpoints whose breaker is open). Waiting between rounds is
    // the callers' retry policy's job (etcd-retry.ts); with one endpoint there is nothing to retry here.
    faultHandling: {
      host: () => circuitBreaker(handleWhen(endpointFailed), { halfOpenAfter: ENDPOINT_COOL_DOWN_MS, breaker: new ConsecutiveBreaker(1) }),
      global: retry(handleWhen(endpointFailed), { maxAttempts: Math.max(0, hosts.length - 1) }),
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
  };
  if (opts.caFile || opts.certFile || opts.keyFile) {
    options.credentials = {
      rootCertificate: opts.caFile ? readTlsFile(opts.caFile, 'etcd CA file') : Buffer.alloc(0),
      ...(opts.certFile ? { certChain: readTlsFile(opts.certFile, 'etcd certificate file') } : {}),
      ...(opts.keyFile ? { privateKey: readTlsFile(opts.keyFile, 'etcd key file') } : {}),
    };
    if (!opts.caFile) delete (options.credentials as { rootCertificate?: Buffer }).rootCertificate;
  }
  if (opts.username) options.auth = { username: opts.username, password: opts.password ?? '' };
  return options;
}

export class EtcdRegistry implements Registry {
  readonly prefix: string;
  readonly configKey: string;
  readonly subnetsPrefix: string;
  private readonly client: Etcd3;

  constructor(private readonly opts: EtcdOptions) {
    this.prefix = opts.prefix.replace(/\/+$/, '') || '/';
    this.configKey = `${this.prefix}/config`;
    this.subnetsPrefix = `${this.prefix}/subnets/`;
    this.client = new Etcd3(etcdClientOptions(opts));
  }

  get endpoints(): readonly string[] {
    return this.opts.endpoints;
  }

  async getNetworkConfig(): Promise<ConfigSnapshot> {
    const res = await this.call('read', this.configKey, () => this.client.get(this.configKey).exec());
    return { raw: res.kvs[0]?.value.toString(), revision: res.header.revision };
  }

  async getSubnets(): Promise<{ leases: StoredLease[]; revision: string }> {
    const res = await this.call('list', this.subnetsPrefix, () => this.client.getAll().prefix(this.subnetsPrefix).exec());
    const leases: StoredLease[] = [];
    for (const kv of res.kvs) {
      const lease = this.leaseFromKv(kv);
      if (lease) leases.push(lease);
    }
    return { leases, revision: res.header.revision };
  }

  async getSubnet(subnet: Ipv4Net): Promise<StoredLease | undefined> {
    const key = this.keyOf(subnet);
    const res = await this.call('read', key, () => this.client.get(key).exec());
    return res.kvs.length ? this.leaseFromKv(res.kvs[0]) : undefined;
  }

  async createSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined> {
    // A key that never existed (or was deleted) has create revision 0.
    return this.writeIf(subnet, attrs, ttlSeconds, 'Create', 0);
  }

  async updateSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number, modRevision: string): Promise<Lease | undefined> {
    return this.writeIf(subnet, attrs, ttlSeconds, 'Mod', modRevision);
  }

  async deleteSubnet(subnet: Ipv4Net, ipv6Subnet?: string): Promise<void> {
    const key = this.keyOf(subnet, ipv6Subnet);
    await this.call('delete', key, () => this.client.delete().key(key).exec());
  }

  async watchSubnets(
    afterRevision: string,
    onEvent: (event: RegistryEvent) => void,
    onError: (err: Error) => void,
  ): Promise<RegistryWatch> {
    const builder = this.client.watch().prefix(this.subnetsPrefix);
    return this.watch(this.subnetsPrefix, builder, afterRevision, onError, (watcher) => {
      watcher.on('put', (kv) => {
        const lease = this.leaseFromKv(kv);
        if (lease) onEvent({ type: 'put', lease, revision: kv.mod_revision });
      });
      watcher.on('delete', (kv) => {
        const parts = parseSubnetKey(kv.key.toString().slice(this.subnetsPrefix.length));
        if (parts) onEvent({ type: 'delete', ...parts, revision: kv.mod_revision });
      });
    });
  }

  async watchNetworkConfig(afterRevision: string, onChange: (raw: string | undefined) => void, onError: (err: Error) => void): Promise<RegistryWatch> {
    return this.watch(this.configKey, this.client.watch().key(this.configKey), afterRevision, onError, (watcher) => {
      watcher.on('put', (kv) => onChange(kv.value.toString()));
      watcher.on('delete', () => onChange(undefined));
    });
  }

  close(): void {
    this.client.close();
  }

  /** Remaining TTL of the etcd lease attached to a key, for display. Undefined for reservations. */
  async expirationOf(leaseId: string): Promise<Date | undefined> {
    if (!leaseId || leaseId === '0') return undefined;
    const res = await this.call('read', `lease ${leaseId}`, () => this.client.leaseClient.leaseTimeToLive({ ID: leaseId }));
    const ttl = Number(res.TTL);
    return ttl > 0 ? new Date(Date.now() + ttl * 1000) : undefined;
  }

  private leaseFromKv(kv: IKeyValue): StoredLease | undefined {
    const key = kv.key.toString();
    const parts = parseSubnetKey(key.slice(this.subnetsPrefix.length));
    if (!parts) return undefined; // other keys under subnets/ are not ours to interpret
    const attrs = parseLeaseValue(kv.value.toString());
    if (!attrs) {
      log.warn({ event: 'lease-value-invalid', key }, 'skipping lease whose value is not valid flannel lease JSON');
      return undefined;
    }
    return { ...parts, attrs, modRevision: kv.mod_revision, ...(kv.lease && kv.lease !== '0' ? { leaseId: kv.lease } : {}) };
  }

  /**
   * Writes our lease value to the key of `subnet` in one transaction, if the key's `column` still equals `value`;
   * undefined if it did not (another host got there first).
   */
  private async writeIf(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number, column: 'Create' | 'Mod', value: number | string): Promise<Lease | undefined> {
    const key = this.keyOf(subnet);
    const leaseId = ttlSeconds > 0 ? await this.grant(key, ttlSeconds) : undefined;
    const put = this.client.put(key).value(JSON.stringify(attrs));
    if (leaseId) put.lease(leaseId);
    const res = await this.withLease(leaseId, () => this.call('write', key, () => this.client.if(key, column, '==', value).then(put).commit()));
    if (!res.succeeded) {
      // Our fresh etcd lease must not linger for 24 h.
      await this.revoke(leaseId);
      return undefined;
    }
    return leaseOf(subnet, attrs, ttlSeconds, leaseId);
  }

  private keyOf(subnet: Ipv4Net, ipv6Subnet?: string): string {
    return this.subnetsPrefix + subnetKey(subnet, ipv6Subnet);
  }

  private async grant(key: string, ttlSeconds: number): Promise<string> {
    const res = await this.call('grant a lease for', key, () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }));
    return res.ID;
  }

  /** Runs the write that attaches `leaseId`; if it fails, the granted etcd lease is revoked instead of left for its TTL. */
  private async withLease<T>(leaseId: string | undefined, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      await this.revoke(leaseId);
      throw err;
    }
  }

  /** Best effort and bounded: etcd expires the lease anyway if this does not get through. */
  private async revoke(leaseId: string | undefined): Promise<void> {
    if (!leaseId) return;
    await this.call('revoke', `lease ${leaseId}`, () => this.client.leaseClient.leaseRevoke({ ID: leaseId })).catch(() => undefined);
  }

  /**
   * Creates a watch from `afterRevision`. etcd3 reconnects a dropped stream by itself (on another endpoint if this one
   * is down) and resumes from the last revision it saw; only what it cannot resume from reaches `onError`: a
   * compacted revision, or a watch etcd cancelled (an auth token invalidated by an etcd restart, a revoked
   * permission). etcd3 has already forgotten a cancelled watch, so cancelling it again would wait for an answer that
   * never comes: close() skips that, and bounds the wait otherwise.
   */
  private async watch(
    key: string,
    builder: ReturnType<Etcd3['watch']>,
    afterRevision: string,
    onError: (err: Error) => void,
    subscribe: (watcher: Watcher) => void,
  ): Promise<RegistryWatch> {
    const startRevision = (BigInt(afterRevision) + 1n).toString();
    const watcher = builder.startRevision(startRevision).watcher();
    let cancelledByEtcd = false;
    const close = async () => {
      watcher.removeAllListeners('put').removeAllListeners('delete');
      if (cancelledByEtcd) return;
      await Promise.race([watcher.cancel().catch(() => undefined), sleep(WATCH_CLOSE_MS, undefined, { ref: false })]);
    };
    // etcd3's create() waits for as long as no endpoint answers; ours gives up like any other call.
    const abort = new AbortController();
    try {
      await Promise.race([
        once(watcher, 'connected', { signal: abort.signal }),
        once(watcher, 'error', { signal: abort.signal }).then(([err]) => {
          cancelledByEtcd = true;
          throw err;
        }),
        sleep(CALL_DEADLINE_MS, undefined, { signal: abort.signal }).then(() => {
          throw new EtcdUnavailableError(`etcd at ${this.opts.endpoints.join(',')} did not confirm the watch on ${key} within ${CALL_DEADLINE_MS} ms`);
        }),
      ]);
    } catch (err) {
      await close();
      throw this.classify('watch', key, err);
    } finally {
      abort.abort();
    }
    watcher.on('error', (err) => {
      cancelledByEtcd = true;
      onError(this.classify('watch', key, err));
    });
    subscribe(watcher);
    return { close };
  }

  private async call<T>(operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.classify(operation, key, err);
    }
  }

  /**
   * etcd3's errors as ours, by what the caller can do about them: wait (unreachable, timed out), or stop and tell
   * the operator (wrong credentials, a role that does not allow the operation). Messages name the user and the key.
   */
  private classify(operation: string, key: string, err: unknown): EtcdError {
    if (err instanceof EtcdError) return err;
    const user = this.opts.username;
    const detail = errorMessage(err).replace(/^\d+ [A-Z_]+: /, '');
    if (err instanceof EtcdAuthenticationFailedError) {
      return new EtcdAuthError(`etcd rejected the credentials of user "${user}" to ${operation} ${key} (${detail}); check --etcd-username and --etcd-password`, user, key, { cause: err });
    }
    if (err instanceof EtcdPermissionDeniedError) {
      return new EtcdPermissionError(`etcd denied ${user ? `user "${user}"` : 'an unauthenticated client'} permission to ${operation} ${key} (${detail})`, user, key, { cause: err });
    }
    if (/user name is empty/.test(detail)) {
      return new EtcdAuthError(`etcd requires authentication to ${operation} ${key}: set --etcd-username and --etcd-password`, user, key, { cause: err });
    }
    const where = this.opts.endpoints.join(',');
    if ((err instanceof Error && isRecoverableError(err)) || isBrokenCircuitError(err)) {
      return new EtcdUnavailableError(`etcd at ${where} did not answer (${operation} ${key}): ${detail}`, { cause: err });
    }
    return new EtcdRequestError(`etcd at ${where} failed to ${operation} ${key}: ${detail}`, { cause: err });
  }
}

function leaseOf(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number, leaseId: string | undefined): Lease {
  if (!leaseId) return { subnet, attrs };
  return { subnet, attrs, leaseId, expiration: new Date(Date.now() + ttlSeconds * 1000) };
}
