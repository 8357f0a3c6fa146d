import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NetworkConfig } from '../config/network-config.js';
import { FlannelError, SubnetsExhaustedError, errorMessage } from '../errors.js';
import { formatIpv4, formatIpv4Net, netEquals, netsOverlap, type Ipv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import { fitsConfig, freeSubnets, pickRandom } from './allocator.js';
import type { Registry, RegistryEvent } from './etcd-registry.js';
import type { Lease, LeaseAttrs } from './lease.js';

export const DEFAULT_LEASE_TTL_SECONDS = 24 * 60 * 60;
// flannel gives up after this many lost create races in one acquisition (pkg/subnet/etcd/local_manager.go).
const RACE_RETRIES = 10;

export interface LeaseManagerOptions {
  readonly registry: Registry;
  readonly config: NetworkConfig;
  /** Our lease value; PublicIP identifies this host's lease across restarts. */
  readonly attrs: LeaseAttrs;
  /** FLANNEL_SUBNET's network from the previous subnet file, tried before a random pick. */
  readonly previousSubnet?: Ipv4Net;
  readonly ttlSeconds?: number;
  /** Renew this long before expiry. */
  readonly renewMarginSeconds: number;
  /** Pause between attempts while the network is exhausted or etcd fails. */
  readonly retryIntervalMs?: number;
}

export interface LeaseManagerEvents {
  acquired: [lease: Lease];
  renewed: [lease: Lease];
  /** Our key was deleted or expired; a new acquisition has started. */
  lost: [lease: Lease];
  'renew-failed': [err: Error];
}

/**
 * Owns this host's subnet lease: acquires it (reusing what we held before), renews it before it expires,
 * and acquires again if it disappears. flannel exits when its lease is revoked; we re-acquire instead so
 * a host survives an operator's mistaken delete or a long etcd outage.
 */
export class LeaseManager extends EventEmitter<LeaseManagerEvents> {
  private current: Lease | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private reacquiring: Promise<Lease> | undefined;
  private readonly abort = new AbortController();
  private readonly ttlSeconds: number;
  private readonly retryIntervalMs: number;

  constructor(private readonly opts: LeaseManagerOptions) {
    super();
    this.ttlSeconds = opts.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    this.retryIntervalMs = opts.retryIntervalMs ?? 5_000;
  }

  get lease(): Lease | undefined {
    return this.current;
  }

  /** Acquires a lease, retrying (with a log line each time) while the network is exhausted or etcd fails. */
  async acquire(): Promise<Lease> {
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.tryAcquire();
        this.current = lease;
        this.scheduleRenewal();
        log.info({ event: 'lease-acquired', subnet: formatIpv4Net(lease.subnet), expiration: lease.expiration }, 'acquired subnet lease');
        this.emit('acquired', lease);
        return lease;
      } catch (err) {
        if (this.stopped) throw err;
        if (!(err instanceof SubnetsExhaustedError) && !(err instanceof FlannelError)) throw err;
        log.error({ event: 'lease-acquire-failed', attempt, retryInMs: this.retryIntervalMs }, errorMessage(err));
        await sleep(this.retryIntervalMs, undefined, { signal: this.abort.signal }).catch(() => undefined);
        if (this.stopped) throw new FlannelError('stopped while acquiring a subnet lease');
      }
    }
  }

  /** One acquisition: reuse ours, else the previous subnet, else a random free one; up to 10 create races. */
  async tryAcquire(): Promise<Lease> {
    const { registry, config, attrs } = this.opts;
    for (let race = 0; race < RACE_RETRIES; race++) {
      const { leases } = await registry.getSubnets();
      const own = leases.find((l) => l.attrs.PublicIP === attrs.PublicIP);
      if (own) {
        // A dual-stack lease does not fit an IPv4-only network; flannel deletes it the same way.
        if (fitsConfig(config, own.subnet) && !own.ipv6Subnet) {
          // A reservation (no etcd lease) stays TTL-less, as flannel does.
          return registry.updateSubnet(own.subnet, attrs, own.leaseId ? this.ttlSeconds : 0);
        }
        log.info({ event: 'lease-deleted-misfit', subnet: formatIpv4Net(own.subnet) }, 'deleting our old lease: it no longer fits the network config');
        await registry.deleteSubnet(own.subnet, own.ipv6Subnet);
        continue;
      }
      const taken = leases.map((l) => l.subnet);
      const previous = this.opts.previousSubnet;
      if (previous && fitsConfig(config, previous) && !taken.some((t) => netsOverlap(t, previous))) {
        const lease = await registry.createSubnet(previous, attrs, this.ttlSeconds);
        if (lease) return lease;
        continue;
      }
      const candidate = pickRandom(freeSubnets(config, taken));
      if (!candidate) {
        throw new SubnetsExhaustedError(
          `no free subnet left in ${formatIpv4Net(config.network)} between ${formatIpv4(config.subnetMin)} and ` +
            `${formatIpv4(config.subnetMax)} (${leases.length} leases held)`,
        );
      }
      const lease = await registry.createSubnet(candidate, attrs, this.ttlSeconds);
      if (lease) return lease;
    }
    throw new FlannelError(`gave up after ${RACE_RETRIES} lost races for a subnet under ${registry.prefix}`);
  }

  /**
   * Events on our own key, from the peer watch. A delete means the lease expired or was removed: take a
   * new one. A put from elsewhere that is not ours means another host took the subnet.
   */
  handleOwnKeyEvent(event: RegistryEvent): void {
    const lease = this.current;
    if (!lease || this.stopped) return;
    const subnet = event.type === 'put' ? event.lease.subnet : event.subnet;
    if (!netEquals(subnet, lease.subnet)) return;
    if (event.type === 'put' && event.lease.attrs.PublicIP === this.opts.attrs.PublicIP) return;
    log.warn({ event: 'lease-lost', subnet: formatIpv4Net(lease.subnet), change: event.type }, 'our subnet lease is gone; acquiring again');
    void this.reacquire(lease);
  }

  /** Stops renewing. The lease stays in etcd so that a restart gets the same subnet back. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.renewTimer);
  }

  private reacquire(lost: Lease): Promise<Lease> {
    this.reacquiring ??= (async () => {
      clearTimeout(this.renewTimer);
      this.current = undefined;
      this.emit('lost', lost);
      try {
        return await this.acquire();
      } finally {
        this.reacquiring = undefined;
      }
    })();
    this.reacquiring.catch(() => undefined);
    return this.reacquiring;
  }

  private scheduleRenewal(delayMs?: number): void {
    clearTimeout(this.renewTimer);
    const lease = this.current;
    if (!lease?.expiration || this.stopped) return; // reservations never expire
    const dueIn = lease.expiration.getTime() - this.opts.renewMarginSeconds * 1000 - Date.now();
    // setTimeout overflows past ~24.8 days; a 24 h TTL is far below that.
    this.renewTimer = setTimeout(() => void this.renew(), Math.max(0, delayMs ?? dueIn));
    this.renewTimer.unref?.();
  }

  private async renew(): Promise<void> {
    const lease = this.current;
    if (!lease || this.stopped) return;
    try {
      const { registry, attrs } = this.opts;
      const existing = await registry.getSubnet(lease.subnet);
      if (existing && existing.attrs.PublicIP !== attrs.PublicIP) {
        // While we could not renew (etcd down), the lease expired and another host took the subnet.
        void this.reacquire(lease);
        return;
      }
      const renewed = await registry.updateSubnet(lease.subnet, attrs, this.ttlSeconds);
      if (this.stopped || this.current !== lease) return;
      this.current = renewed;
      log.info({ event: 'lease-renewed', subnet: formatIpv4Net(renewed.subnet), expiration: renewed.expiration }, 'renewed subnet lease');
      this.emit('renewed', renewed);
      this.scheduleRenewal();
    } catch (err) {
      log.warn({ event: 'lease-renew-failed', retryInMs: this.retryIntervalMs }, `renewing the subnet lease failed: ${errorMessage(err)}`);
      this.emit('renew-failed', err as Error);
      this.scheduleRenewal(this.retryIntervalMs);
    }
  }
}
