import { EventEmitter } from 'node:events';
import { errorMessage } from '../errors.js';
import { formatIpv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import type { Registry, RegistryEvent, RegistryWatch } from './etcd-registry.js';
import type { Lease, LeaseEvent } from './lease.js';
import { keyOf } from './subnet-key.js';

export interface LeaseWatcherEvents {
  /** A peer's lease appeared, changed or went away. Our own lease never shows up here. */
  lease: [event: LeaseEvent];
  /** Every raw change, our own key included, for the lease manager. */
  change: [event: RegistryEvent];
  /** The watch failed (etcd down, or compacted past our revision); a re-list follows. */
  'watch-lost': [err: Error];
}

const MAX_BACKOFF_MS = 5_000;

/**
 * Keeps a view of every lease under `<prefix>/subnets/`: a snapshot, then a watch from the snapshot's revision.
 * When the watch is lost (etcd compacted past our revision, or the stream failed), it lists again and publishes
 * the difference, so backends never miss a change.
 */
export class LeaseWatcher extends EventEmitter<LeaseWatcherEvents> {
  private readonly known = new Map<string, Lease>();
  private watch: RegistryWatch | undefined;
  private stopped = false;
  private backoffMs = 100;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly registry: Registry,
    /** Our PublicIP: leases carrying it are ours, whatever subnet they hold. */
    private readonly ownPublicIp: string,
  ) {
    super();
  }

  /** Current peer leases. */
  peers(): Lease[] {
    return [...this.known.values()].filter((l) => this.isPeer(l));
  }

  async start(): Promise<void> {
    await this.resync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    await this.watch?.close().catch(() => undefined);
    this.watch = undefined;
  }

  private isPeer(lease: Lease | undefined): lease is Lease {
    return lease !== undefined && lease.attrs.PublicIP !== this.ownPublicIp;
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    await this.watch?.close().catch(() => undefined);
    const { leases, revision } = await this.registry.getSubnets();
    const seen = new Set<string>();
    for (const lease of leases) {
      const key = keyOf(lease);
      seen.add(key);
      this.apply(key, lease);
    }
    for (const key of [...this.known.keys()]) if (!seen.has(key)) this.apply(key, undefined);
    if (this.stopped) return;
    this.watch = await this.registry.watchSubnets(revision, (ev) => this.onChange(ev), (err) => this.onWatchError(err));
    this.backoffMs = 100;
  }

  private onChange(event: RegistryEvent): void {
    if (this.stopped) return;
    const key = keyOf(event.type === 'put' ? event.lease : event);
    this.apply(key, event.type === 'put' ? event.lease : undefined);
    this.emit('change', event);
  }

  private onWatchError(err: Error): void {
    if (this.stopped) return;
    log.warn({ event: 'watch-lost', retryInMs: this.backoffMs }, `lease watch lost, listing again: ${errorMessage(err)}`);
    this.emit('watch-lost', err);
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => {
      this.resync().catch((e) => this.onWatchError(e as Error));
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }

  /** Records the new state of one key and publishes what it means for peers. */
  private apply(key: string, next: Lease | undefined): void {
    const prev = this.known.get(key);
    if (next) this.known.set(key, next);
    else this.known.delete(key);
    const wasPeer = this.isPeer(prev);
    const isPeer = this.isPeer(next);
    let event: LeaseEvent | undefined;
    if (wasPeer && isPeer) event = sameAttrs(prev, next) ? undefined : { type: 'changed', lease: next, previous: prev };
    else if (isPeer) event = { type: 'added', lease: next };
    else if (wasPeer) event = { type: 'removed', lease: prev };
    if (!event) return;
    log.info({ event: `peer-${event.type}`, subnet: formatIpv4Net(event.lease.subnet), publicIp: event.lease.attrs.PublicIP }, `peer lease ${event.type}`);
    this.emit('lease', event);
  }
}

function sameAttrs(a: Lease, b: Lease): boolean {
  return JSON.stringify(a.attrs) === JSON.stringify(b.attrs);
}
