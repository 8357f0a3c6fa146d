import { readFileSync } from 'node:fs';
import { noop } from 'cockatiel';
import { Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import { EtcdUnavailableError, FileAccessError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import type { Ipv4Net } from '../ip/ipv4.js';
import { parseLeaseValue, parseSubnetKey, subnetKey } from './subnet-key.js';
import type { Lease, LeaseAttrs } from './lease.js';

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
  | { readonly type: 'put'; readonly lease: Lease; readonly revision: string }
  | { readonly type: 'delete'; readonly subnet: Ipv4Net; readonly ipv6Subnet?: string; readonly revision: string };

export interface RegistryWatch {
  close(): Promise<void>;
}

/**
 * The narrow set of etcd operations flanneld needs (flannel's `subnet.Registry`). Everything above it
 * (allocation, renewal, watching peers) is policy and lives in the lease manager and lease watcher.
 */
export interface Registry {
  readonly prefix: string;
  /** The raw JSON at `<prefix>/config`, or undefined while it does not exist. */
  getNetworkConfig(): Promise<string | undefined>;
  /** Every lease under `<prefix>/subnets/` and the revision of that snapshot. Unparsable values are skipped. */
  getSubnets(): Promise<{ leases: Lease[]; revision: string }>;
  getSubnet(subnet: Ipv4Net): Promise<Lease | undefined>;
  /** Creates the key only if absent. Returns the lease, or undefined if another host got there first. */
  createSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined>;
  /** Rewrites the key with a fresh etcd lease (TTL 0 keeps a reservation without one). */
  updateSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease>;
  /** Deletes the key of `subnet`, or of its dual-stack form when `ipv6Subnet` is given. */
  deleteSubnet(subnet: Ipv4Net, ipv6Subnet?: string): Promise<void>;
  /** Watches changes after `afterRevision`. `onError` fires when the watch is lost (e.g. compacted revision). */
  watchSubnets(
    afterRevision: string,
    onEvent: (event: RegistryEvent) => void,
    onError: (err: Error) => void,
  ): Promise<RegistryWatch>;
  close(): void;
}

// How long one etcd call may take before we call etcd unreachable for that attempt.
const CALL_DEADLINE_MS = 5_000;

function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FileAccessError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

export function etcdClientOptions(opts: EtcdOptions): IOptions {
  const options: IOptions = {
    hosts: opts.endpoints.map((e) => e.trim()).filter(Boolean),
    dialTimeout: 3_000,
    // etcd3's default policy opens a 5 s circuit breaker after 3 failures; we retry ourselves with backoff.
    faultHandling: { host: () => noop, global: noop },
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
  private readonly client: Etcd3;
  private readonly subnetsPrefix: string;

  constructor(private readonly opts: EtcdOptions) {
    this.prefix = opts.prefix.replace(/\/+$/, '') || '/';
    this.subnetsPrefix = `${this.prefix}/subnets/`;
    this.client = new Etcd3(etcdClientOptions(opts));
  }

  get endpoints(): readonly string[] {
    return this.opts.endpoints;
  }

  async getNetworkConfig(): Promise<string | undefined> {
    return (await this.call(() => this.client.get(`${this.prefix}/config`).string())) ?? undefined;
  }

  async getSubnets(): Promise<{ leases: Lease[]; revision: string }> {
    const res = await this.call(() => this.client.getAll().prefix(this.subnetsPrefix).exec());
    const leases: Lease[] = [];
    for (const kv of res.kvs) {
      const lease = this.leaseFromKv(kv);
      if (lease) leases.push(lease);
    }
    return { leases, revision: res.header.revision };
  }

  async getSubnet(subnet: Ipv4Net): Promise<Lease | undefined> {
    const res = await this.call(() => this.client.get(this.keyOf(subnet)).exec());
    return res.kvs.length ? this.leaseFromKv(res.kvs[0]) : undefined;
  }

  async createSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined> {
    const key = this.keyOf(subnet);
    const value = JSON.stringify(attrs);
    const leaseId = ttlSeconds > 0 ? await this.grant(ttlSeconds) : undefined;
    const put = this.client.put(key).value(value);
    if (leaseId) put.lease(leaseId);
    const res = await this.call(() => this.client.if(key, 'Create', '==', 0).then(put).commit());
    if (!res.succeeded) {
      // Another host won the race for this subnet; our fresh etcd lease must not linger for 24 h.
      if (leaseId) await this.call(() => this.client.leaseClient.leaseRevoke({ ID: leaseId })).catch(() => undefined);
      return undefined;
    }
    return leaseOf(subnet, attrs, ttlSeconds, leaseId);
  }

  async updateSubnet(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease> {
    const put = this.client.put(this.keyOf(subnet)).value(JSON.stringify(attrs));
    const leaseId = ttlSeconds > 0 ? await this.grant(ttlSeconds) : undefined;
    if (leaseId) put.lease(leaseId);
    await this.call(() => put.exec());
    return leaseOf(subnet, attrs, ttlSeconds, leaseId);
  }

  async deleteSubnet(subnet: Ipv4Net, ipv6Subnet?: string): Promise<void> {
    await this.call(() => this.client.delete().key(this.keyOf(subnet, ipv6Subnet)).exec());
  }

  async watchSubnets(
    afterRevision: string,
    onEvent: (event: RegistryEvent) => void,
    onError: (err: Error) => void,
  ): Promise<RegistryWatch> {
    const startRevision = (BigInt(afterRevision) + 1n).toString();
    const watcher: Watcher = await this.client.watch().prefix(this.subnetsPrefix).startRevision(startRevision).create();
    watcher.on('put', (kv) => {
      const lease = this.leaseFromKv(kv);
      if (lease) onEvent({ type: 'put', lease, revision: kv.mod_revision });
    });
    watcher.on('delete', (kv) => {
      const parts = parseSubnetKey(kv.key.toString().slice(this.subnetsPrefix.length));
      if (parts) onEvent({ type: 'delete', ...parts, revision: kv.mod_revision });
    });
    // etcd3 reconnects a dropped stream by itself and resumes from the last revision it saw; only errors
    // it cannot resume from (compaction) reach us here, and the caller re-lists.
    watcher.on('error', (err) => onError(err));
    return { close: () => watcher.cancel() };
  }

  close(): void {
    this.client.close();
  }

  /** Remaining TTL of the etcd lease attached to a key, for display. Undefined for reservations. */
  async expirationOf(leaseId: string): Promise<Date | undefined> {
    if (!leaseId || leaseId === '0') return undefined;
    const res = await this.call(() => this.client.leaseClient.leaseTimeToLive({ ID: leaseId }));
    const ttl = Number(res.TTL);
    return ttl > 0 ? new Date(Date.now() + ttl * 1000) : undefined;
  }

  private leaseFromKv(kv: IKeyValue): Lease | undefined {
    const key = kv.key.toString();
    const parts = parseSubnetKey(key.slice(this.subnetsPrefix.length));
    if (!parts) return undefined; // other keys under subnets/ are not ours to interpret
    const attrs = parseLeaseValue(kv.value.toString());
    if (!attrs) {
      log.warn({ event: 'lease-value-invalid', key }, 'skipping lease whose value is not valid flannel lease JSON');
      return undefined;
    }
    return { ...parts, attrs, ...(kv.lease && kv.lease !== '0' ? { leaseId: kv.lease } : {}) };
  }

  private keyOf(subnet: Ipv4Net, ipv6Subnet?: string): string {
    return this.subnetsPrefix + subnetKey(subnet, ipv6Subnet);
  }

  private async grant(ttlSeconds: number): Promise<string> {
    const res = await this.call(() => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }));
    return res.ID;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new EtcdUnavailableError(`etcd request to ${this.opts.endpoints.join(',')} failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }
}

function leaseOf(subnet: Ipv4Net, attrs: LeaseAttrs, ttlSeconds: number, leaseId: string | undefined): Lease {
  if (!leaseId) return { subnet, attrs };
  return { subnet, attrs, leaseId, expiration: new Date(Date.now() + ttlSeconds * 1000) };
}
