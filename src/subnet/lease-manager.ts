import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NetworkConfig } from '../config/network-config.js';
import { LeaseContentionError, StoppedError, SubnetsExhaustedError, errorMessage } from '../errors.js';
import { ETCD_LOOP_GRACE_MS, LoopPulse } from '../health/loop-pulse.js';
import { formatIpv4, formatIpv4Net, netEquals, netsOverlap, type Ipv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import { DEFAULT_RETRY, type RetrySchedule } from '../retry.js';
import { fitsConfig, freeSubnets, pickRandom } from './allocator.js';
import type { Registry, RegistryEvent } from './etcd-registry.js';
import { retryEtcd } from './etcd-retry.js';
import type { EtcdStatus } from './etcd-status.js';
import type { Lease, LeaseAttrs } from './lease.js';

export const DEFAULT_LEASE_TTL_SECONDS = 24 * 60 * 60;
// flannel gives up after this many lost create races in one acquisition (pkg/subnet/etcd/local_manager.go).
const RACE_RETRIES = 10;

export interface LeaseManagerOptions {
  readonly registry: Registry;
  readonly config: NetworkConfig;
  /** Our lease value; PublicIP identifies this host's lease across restarts. */
  readonly attrs: LeaseAttrs;
  /** FLANNEL_SUBNET's network from the previous subnet file: the subnet held last before this process. */
  readonly previousSubnet?: Ipv4Net;
  readonly ttlSeconds?: number;
  /** Renew this long before expiry. */
  readonly renewMarginSeconds: number;
  /** Backoff between attempts while the network is exhausted or etcd fails. */
  readonly retry?: RetrySchedule;
  /** Where etcd failures are counted and refusals reported. */
  readonly status?: EtcdStatus;
}

export interface LeaseManagerEvents {
  acquired: [lease: Lease];
  renewed: [lease: Lease];
  /** Our key was deleted, expired or taken; a new acquisition has started. */
  lost: [lease: Lease];
  /** The new lease is on another subnet than the one held last: whatever uses the subnet file must restart. */
  moved: [from: Ipv4Net, to: Ipv4Net];
}

/** Why an acquisition attempt failed, as the `reason` of its `lease-acquire-failed` line (for log shippers and tests). */
type AcquireFailure = 'exhausted' | 'contention' | 'etcd';

function acquireFailure(err: Error): AcquireFailure {
  if (err instanceof SubnetsExhaustedError) return 'exhausted';
  if (err instanceof LeaseContentionError) return 'contention';
  return 'etcd';
}

/** What one renewal attempt found: the renewed lease, or that another host holds the subnet now. */
type RenewOutcome = Lease | 'lost';

/**
 * Owns this host's subnet lease: acquires it (reusing what we held before), renews it before it expires, and
 * acquires again if it disappears, preferring the subnet held last. flannel exits when its lease is revoked; we
 * re-acquire instead so a host survives an operator's mistaken delete or a long etcd outage.
 */
export class LeaseManager extends EventEmitter<LeaseManagerEvents> {
  private current: Lease | undefined;
  /** The subnet this host held last (or the subnet file's at startup): docker's bridge still holds it. */
  private lastHeld: Ipv4Net | undefined;
  private stopped = false;
  private reacquiring: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  /** Aborted when the lease it renews is lost, so that only one renewal loop runs. */
  private renewing: AbortController | undefined;
  private readonly ttlSeconds: number;
  private readonly schedule: RetrySchedule;
  /**
   * Due at each renewal (hours away with flannel's TTL) and at each acquisition or renewal attempt while etcd fails:
   * a renewal or acquisition that hangs fails liveness.
   */
  readonly pulse = new LoopPulse('lease renewal', ETCD_LOOP_GRACE_MS);

  constructor(private readonly opts: LeaseManagerOptions) {
    super();
    this.ttlSeconds = opts.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    this.schedule = opts.retry ?? DEFAULT_RETRY;
    this.lastHeld = opts.previousSubnet;
  }

  get lease(): Lease | undefined {
    return this.current;
  }

  /** True between losing the lease and holding a new one. */
  get acquiring(): boolean {
    return this.reacquiring !== undefined;
  }

  /**
   * Acquires a lease, retrying with backoff while the network is exhausted or etcd is unreachable. At startup
   * (`retryDenied` false) a refusal by etcd is thrown at once; later acquisitions wait for the operator.
   */
  async acquire({ retryDenied = false } = {}): Promise<Lease> {
    this.pulse.beat(0);
    const lease = await retryEtcd(() => this.tryAcquire(), {
      loop: 'acquisition',
      schedule: this.schedule,
      signal: this.stopping.signal,
      status: this.opts.status,
      retryDenied,
      alsoRetry: (err) => err instanceof SubnetsExhaustedError || err instanceof LeaseContentionError,
      onRetry: (err, attempt, retryInMs) => {
        this.pulse.beat(retryInMs);
        log.error({ event: 'lease-acquire-failed', reason: acquireFailure(err), attempt, retryInMs }, errorMessage(err));
      },
    });
    this.adopt(lease);
    return lease;
  }

  /** One acquisition: reuse ours, else the subnet held last, else a random free one; up to 10 create races. */
  async tryAcquire(): Promise<Lease> {
    const { registry, config, attrs } = this.opts;
    for (let race = 0; race < RACE_RETRIES; race++) {
      const { leases } = await registry.getSubnets();
      const own = leases.find((l) => l.attrs.PublicIP === attrs.PublicIP);
      if (own) {
        // A dual-stack lease does not fit an IPv4-only network; flannel deletes it the same way.
        if (fitsConfig(config, own.subnet) && !own.ipv6Subnet) {
          // A reservation (no etcd lease) stays TTL-less, as flannel does.
          const lease = await registry.updateSubnet(own.subnet, attrs, own.leaseId ? this.ttlSeconds : 0, own.modRevision);
          if (lease) return lease;
          // The key changed since the listing (deleted, perhaps taken by another host): look again.
          continue;
        }
        log.info({ event: 'lease-deleted-misfit', subnet: formatIpv4Net(own.subnet) }, 'deleting our old lease: it no longer fits the network config');
        await registry.deleteSubnet(own.subnet, own.ipv6Subnet);
        continue;
      }
      const taken = leases.map((l) => l.subnet);
      const last = this.lastHeld;
      const candidate =
        last && fitsConfig(config, last) && !taken.some((t) => netsOverlap(t, last)) ? last : pickRandom(freeSubnets(config, taken));
      if (!candidate) {
        throw new SubnetsExhaustedError(
          `no free subnet left in ${formatIpv4Net(config.network)} between ${formatIpv4(config.subnetMin)} and ` +
            `${formatIpv4(config.subnetMax)} (${leases.length} leases held)`,
        );
      }
      const lease = await registry.createSubnet(candidate, attrs, this.ttlSeconds);
      if (lease) return lease;
    }
    throw new LeaseContentionError(`gave up after ${RACE_RETRIES} lost races for a subnet under ${registry.prefix}`);
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
    this.reacquire(lease);
  }

  /** Stops renewing and acquiring. The lease stays in etcd so that a restart gets the same subnet back. */
  stop(): void {
    this.stopped = true;
    this.stopping.abort();
    this.renewing?.abort();
  }

  /** Takes `lease` as ours: says so (loudly if the subnet changed) and starts renewing it. */
  private adopt(lease: Lease): void {
    this.current = lease;
    const from = this.lastHeld;
    this.lastHeld = lease.subnet;
    log.info({ event: 'lease-acquired', subnet: formatIpv4Net(lease.subnet), expiration: lease.expiration }, 'acquired subnet lease');
    if (from && !netEquals(from, lease.subnet)) {
      log.error(
        { event: 'lease-moved', from: formatIpv4Net(from), to: formatIpv4Net(lease.subnet) },
        `this host moved from subnet ${formatIpv4Net(from)} to ${formatIpv4Net(lease.subnet)} (the old one is taken): ` +
          `restart docker so that its bridge takes the new FLANNEL_SUBNET; until then its containers are cut off`,
      );
      this.emit('moved', from, lease.subnet);
    }
    this.emit('acquired', lease);
    // A reservation is never renewed: nothing is due until it is lost. A lease's renewal loop beats below, at once.
    this.pulse.rest();
    this.renewing?.abort();
    this.renewing = new AbortController();
    void this.renewLoop(lease, AbortSignal.any([this.stopping.signal, this.renewing.signal]));
  }

  private reacquire(lost: Lease): void {
    if (this.reacquiring || this.stopped) return;
    this.renewing?.abort();
    this.current = undefined;
    this.emit('lost', lost);
    this.reacquiring = this.acquire({ retryDenied: true }).then(
      () => undefined,
      (err) => {
        if (!(err instanceof StoppedError)) log.error({ event: 'lease-acquire-failed' }, `cannot acquire a subnet lease: ${errorMessage(err)}`);
      },
    );
    void this.reacquiring.finally(() => (this.reacquiring = undefined));
  }

  /** Renews `lease` before each expiry until it is lost or we stop. Never rejects. */
  private async renewLoop(lease: Lease, signal: AbortSignal): Promise<void> {
    let held = lease;
    while (held.expiration && !signal.aborted) {
      // Reservations never expire. setTimeout overflows past ~24.8 days; a 24 h TTL is far below that.
      const dueIn = held.expiration.getTime() - this.opts.renewMarginSeconds * 1000 - Date.now();
      this.pulse.beat(dueIn);
      try {
        await sleep(Math.max(0, dueIn), undefined, { signal, ref: false });
        const outcome = await retryEtcd(() => this.renewOnce(held), {
          loop: 'renewal',
          schedule: this.schedule,
          signal,
          status: this.opts.status,
          retryDenied: true,
          onRetry: (err, attempt, retryInMs) => {
            this.pulse.beat(retryInMs);
            log.warn({ event: 'lease-renew-failed', attempt, retryInMs }, `renewing the subnet lease failed: ${errorMessage(err)}`);
          },
        });
        if (signal.aborted) return;
        if (outcome === 'lost') {
          this.reacquire(held);
          return;
        }
        held = outcome;
        this.current = held;
        log.info({ event: 'lease-renewed', subnet: formatIpv4Net(held.subnet), expiration: held.expiration }, 'renewed subnet lease');
        this.emit('renewed', held);
      } catch (err) {
        if (signal.aborted) return;
        // Not an etcd error (those are retried above): report it, and try again after the longest backoff.
        log.error({ event: 'lease-renew-failed' }, `renewing the subnet lease failed: ${errorMessage(err)}`);
        this.pulse.beat(this.schedule.maxDelayMs);
        await sleep(this.schedule.maxDelayMs, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /**
   * Rewrites our key with a fresh TTL. If the key expired while etcd was unreachable it is created again (create-only,
   * so a host that took the subnet meanwhile keeps it); if another host holds it, or the key changed between our read
   * and our write (deleted and taken meanwhile), the lease is lost: we never overwrite another host's key.
   */
  private async renewOnce(lease: Lease): Promise<RenewOutcome> {
    const { registry, attrs } = this.opts;
    const existing = await registry.getSubnet(lease.subnet);
    if (existing && existing.attrs.PublicIP !== attrs.PublicIP) return 'lost';
    const renewed = existing
      ? await registry.updateSubnet(lease.subnet, attrs, this.ttlSeconds, existing.modRevision)
      : await registry.createSubnet(lease.subnet, attrs, this.ttlSeconds);
    return renewed ?? 'lost';
  }
}
