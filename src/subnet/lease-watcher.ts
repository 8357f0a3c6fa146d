import { EventEmitter } from 'node:events';
import type { LoopPulse } from '../health/loop-pulse.js';
import { formatIpv4Net, type Ipv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import { DEFAULT_RETRY, type RetrySchedule } from '../retry.js';
import type { Registry, RegistryEvent } from './etcd-registry.js';
import type { EtcdStatus } from './etcd-status.js';
import type { Lease, LeaseEvent } from './lease.js';
import { screenLeases, type IgnoredLease, type IgnoreReason } from './lease-screen.js';
import { ResilientWatch } from './resilient-watch.js';
import { keyOf } from './subnet-key.js';

export interface LeaseWatcherOptions {
  readonly registry: Registry;
  /** Our PublicIP: leases carrying it are ours, whatever subnet they hold. */
  readonly ownPublicIp: string;
  /** The config's Network: peer leases outside it are not routed. */
  readonly network: Ipv4Net;
  /** Our current subnet, if any: peer leases overlapping it are not routed. */
  readonly ownSubnet?: () => Ipv4Net | undefined;
  readonly retry?: RetrySchedule;
  readonly status?: EtcdStatus;
}

export interface LeaseWatcherEvents {
  /** A routable peer lease appeared, changed or went away. Our own and suspicious leases never show up here. */
  lease: [event: LeaseEvent];
  /** Every raw change, our own key included, for the lease manager. */
  change: [event: RegistryEvent];
}

/**
 * Keeps a view of every lease under `<prefix>/subnets/`: a snapshot, then a watch from the snapshot's revision,
 * re-listed when the watch is lost. Backends get only routable peers, as added/changed/removed events: leases
 * outside Network or overlapping another lease (or ours) are held back with a warning naming both keys, and
 * published once the conflict is gone.
 */
export class LeaseWatcher extends EventEmitter<LeaseWatcherEvents> {
  private readonly known = new Map<string, Lease>();
  private readonly published = new Map<string, Lease>();
  private ignored = new Map<string, IgnoredLease>();
  private listedOnce = false;
  private readonly watch: ResilientWatch;

  constructor(private readonly opts: LeaseWatcherOptions) {
    super();
    this.watch = new ResilientWatch({
      loop: 'watch',
      livenessName: 'peer watch',
      schedule: opts.retry ?? DEFAULT_RETRY,
      status: opts.status,
      list: () => this.list(),
      watch: (revision, onError) => opts.registry.watchSubnets(revision, (ev) => this.onChange(ev), onError),
    });
  }

  /** The peer watch's liveness. */
  get pulse(): LoopPulse {
    return this.watch.pulse;
  }

  /** True once the first listing is in: from then on peers() is the whole truth, not just what was seen so far. */
  get listed(): boolean {
    return this.listedOnce;
  }

  /** Current routable peer leases. */
  peers(): Lease[] {
    return [...this.published.values()];
  }

  /** Peer leases held back right now, by reason. */
  ignoredCounts(): Record<IgnoreReason, number> {
    const counts: Record<IgnoreReason, number> = { outside_network: 0, overlap: 0 };
    for (const { reason } of this.ignored.values()) counts[reason]++;
    return counts;
  }

  /** Lists and starts watching, retrying while etcd is unreachable; a refusal is thrown unless `retryDenied`. */
  async start(options: { retryDenied?: boolean } = {}): Promise<void> {
    await this.watch.start(options);
  }

  async stop(): Promise<void> {
    await this.watch.stop();
  }

  /** Our subnet changed: leases that overlapped the old one (or now overlap the new one) are sorted again. */
  refresh(): void {
    this.publish();
  }

  private async list(): Promise<string> {
    const { leases, revision } = await this.opts.registry.getSubnets();
    this.known.clear();
    for (const lease of leases) this.known.set(keyOf(lease), lease);
    this.publish();
    this.listedOnce = true;
    return revision;
  }

  private onChange(event: RegistryEvent): void {
    const key = keyOf(event.type === 'put' ? event.lease : event);
    if (event.type === 'put') this.known.set(key, event.lease);
    else this.known.delete(key);
    this.publish();
    this.emit('change', event);
  }

  /** Screens every known lease and publishes the difference to what the backend has. */
  private publish(): void {
    const own = { subnet: this.opts.ownSubnet?.(), publicIp: this.opts.ownPublicIp };
    const { routable, ignored } = screenLeases([...this.known.values()], this.opts.network, own);
    const next = new Map(routable.map((l) => [keyOf(l), l]));
    for (const [key, prev] of this.published) if (!next.has(key)) this.announce(key, { type: 'removed', lease: prev });
    for (const [key, lease] of next) {
      const prev = this.published.get(key);
      if (!prev) this.announce(key, { type: 'added', lease });
      else if (!sameAttrs(prev, lease)) this.announce(key, { type: 'changed', lease, previous: prev });
      else this.published.set(key, lease); // same route, fresher expiration
    }
    this.noteIgnored(new Map(ignored.map((i) => [keyOf(i.lease), i])));
  }

  private announce(key: string, event: LeaseEvent): void {
    if (event.type === 'removed') this.published.delete(key);
    else this.published.set(key, event.lease);
    log.info({ event: `peer-${event.type}`, subnet: formatIpv4Net(event.lease.subnet), publicIp: event.lease.attrs.PublicIP }, `peer lease ${event.type}`);
    this.emit('lease', event);
  }

  /**
   * One warning when a lease starts being held back (or for another reason), one line when it is accepted again. Two
   * peer leases that overlap each other get one warning naming both.
   */
  private noteIgnored(next: Map<string, IgnoredLease>): void {
    const prefix = this.opts.registry.subnetsPrefix;
    for (const [key, item] of next) {
      const prev = this.ignored.get(key);
      if (prev && prev.reason === item.reason && prev.conflict === item.conflict) continue;
      const other = item.reason === 'overlap' ? next.get(item.conflict) : undefined;
      const mutual = other?.reason === 'overlap' && other.conflict === key;
      if (mutual && item.conflict < key) continue; // the pair's line comes from the other key
      const what = `the lease ${prefix}${key} of ${item.lease.attrs.PublicIP}`;
      const message =
        item.reason === 'outside_network'
          ? `not routing ${what}: it lies outside the network ${item.conflict}`
          : mutual
            ? `not routing ${what} nor the lease ${prefix}${item.conflict} of ${other!.lease.attrs.PublicIP}: they overlap`
            : `not routing ${what}: it overlaps ${prefix}${item.conflict}`;
      log.warn(
        {
          event: 'lease-ignored',
          key: prefix + key,
          reason: item.reason,
          conflict: item.reason === 'overlap' ? prefix + item.conflict : item.conflict,
          publicIp: item.lease.attrs.PublicIP,
        },
        `${message}; fix or delete the wrong key`,
      );
    }
    for (const key of this.ignored.keys()) {
      if (!next.has(key) && this.known.has(key)) log.info({ event: 'lease-accepted', key: prefix + key }, `lease ${prefix}${key} no longer conflicts`);
    }
    this.ignored = next;
  }
}

function sameAttrs(a: Lease, b: Lease): boolean {
  return JSON.stringify(a.attrs) === JSON.stringify(b.attrs);
}
