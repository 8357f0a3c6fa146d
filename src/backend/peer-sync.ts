import { errorMessage } from '../errors.js';
import { formatIpv4Net, type Ipv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import { subnetKey } from '../subnet/subnet-key.js';
import { counter, sample, type MetricSample } from './backend.js';

/** A peer this host should reach, and what the backend needs to program for it. */
export interface WantedPeer<W> {
  readonly subnet: Ipv4Net;
  readonly want: W;
}

/** One pass over a snapshot of the kernel's state, read once at its start; each call fixes what differs. */
export interface PeerPass<W> {
  /** Makes the kernel hold what `want` asks for `subnet`; returns how many entries it wrote or removed. */
  ensure(subnet: Ipv4Net, want: W): Promise<number>;
  /** Removes what the kernel holds of ours for `subnet`; returns how many entries. */
  remove(subnet: Ipv4Net): Promise<number>;
  /** Removes entries of ours that no wanted peer claims (leases gone while we were down); returns how many. */
  removeUnclaimed(wanted: ReadonlyMap<string, WantedPeer<W>>): Promise<number>;
}

/** How a backend reads and writes its per-peer kernel state. */
export interface PeerDriver<W> {
  /** Reads the kernel once and runs `fn` over that snapshot (one netlink socket for the whole pass). */
  pass<T>(fn: (pass: PeerPass<W>) => Promise<T>): Promise<T>;
}

interface PassResult {
  readonly changed: number;
  readonly removedStale: number;
  readonly failed: number;
}

type Cause = 'lease' | 'reconcile' | 'repair';

/**
 * Keeps the kernel's per-peer state (routes, neighbours, FDB entries) equal to what the peer leases ask for,
 * without ever flapping what is already right:
 * - lease events update the wanted set and mark their subnet; one pass (one kernel read) serves every event queued
 *   meanwhile, so a burst of thousands at startup costs one dump, and entries a restart left in place are adopted;
 * - `reconcile` (every current lease at once, after the first listing and at each start) also removes what no lease
 *   claims any more;
 * - a periodic repair puts back whatever went missing or changed, as flannel's host-gw does every 10 s.
 * Passes run one at a time; a peer that fails stays marked and is retried on the next pass.
 */
export class PeerSync<W> {
  private readonly wanted = new Map<string, WantedPeer<W>>();
  /** Subnets whose kernel state must be checked on the next pass (wanted or not). */
  private readonly dirty = new Map<string, Ipv4Net>();
  private everything = false;
  private removeStale = false;
  private reconciled = false;
  private cause: Cause = 'lease';
  private tail: Promise<unknown> = Promise.resolve();
  private pending: Promise<PassResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly counts: Record<Cause, number> = { lease: 0, reconcile: 0, repair: 0 };

  constructor(
    private readonly driver: PeerDriver<W>,
    /** What this sync programs, for log lines ("vxlan peers"). */
    private readonly what: string,
  ) {}

  /**
   * Wants `want` for `subnet` (undefined: nothing); resolves once a pass has run for it. Never rejects: a pass that
   * failed has logged why, once for every event it served, and left the subnet marked for the next pass.
   */
  async set(subnet: Ipv4Net, want: W | undefined): Promise<void> {
    if (this.closed) return;
    const key = subnetKey(subnet);
    if (want === undefined) this.wanted.delete(key);
    else this.wanted.set(key, { subnet, want });
    this.dirty.set(key, subnet);
    await this.schedule('lease').catch(() => undefined);
  }

  /**
   * Makes `peers` the whole wanted set (every current lease, given by the daemon) and runs a full pass that
   * also removes what the kernel holds of ours for leases that no longer exist. Later repairs do the same.
   */
  async reconcile(peers: readonly WantedPeer<W>[]): Promise<void> {
    if (this.closed) return;
    for (const [key, p] of this.wanted) this.dirty.set(key, p.subnet);
    this.wanted.clear();
    for (const p of peers) this.wanted.set(subnetKey(p.subnet), p);
    this.reconciled = true;
    this.removeStale = true;
    this.everything = true;
    await this.schedule('reconcile');
  }

  /** Runs a repair pass every `intervalMs` until close(); the timer never keeps the process alive. */
  startRepairs(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.everything = true;
      this.removeStale = this.reconciled;
      this.schedule('repair').catch(() => undefined);
    }, intervalMs);
    this.timer.unref();
  }

  stopRepairs(): void {
    clearInterval(this.timer);
  }

  /** Stops repairs and waits for the pass under way; the kernel state stays as it is (a restart adopts it). */
  async close(): Promise<void> {
    this.closed = true;
    this.stopRepairs();
    await this.tail.catch(() => undefined);
  }

  metrics(): MetricSample[] {
    const help = 'Kernel entries (routes, neighbours, FDB entries) written or removed for peers, by cause';
    return [
      sample('gauge', 'flannel_backend_peers', 'Peer leases this backend programs into the kernel', {}, this.wanted.size),
      ...Object.entries(this.counts).map(([cause, value]) => counter('flannel_backend_kernel_writes_total', help, { cause }, value)),
    ];
  }

  /** Queues a pass (or joins the one already queued but not started) and resolves when it has run. */
  private schedule(cause: Cause): Promise<PassResult> {
    if (cause !== 'lease') this.cause = cause;
    if (!this.pending) {
      const run = this.tail.then(() => {
        this.pending = undefined;
        return this.runPass();
      });
      this.pending = run;
      this.tail = run.catch(() => undefined);
    }
    return this.pending;
  }

  private async runPass(): Promise<PassResult> {
    const cause = this.cause;
    const subnets = new Map(this.dirty);
    if (this.everything) for (const [key, p] of this.wanted) subnets.set(key, p.subnet);
    const removeStale = this.removeStale;
    this.dirty.clear();
    this.everything = this.removeStale = false;
    this.cause = 'lease';
    if (subnets.size === 0 && !removeStale) return { changed: 0, removedStale: 0, failed: 0 };
    let result: PassResult;
    try {
      result = await this.driver.pass(async (pass) => {
        let changed = 0;
        let failed = 0;
        for (const [key, subnet] of subnets) {
          const peer = this.wanted.get(key);
          try {
            const writes = peer ? await pass.ensure(subnet, peer.want) : await pass.remove(subnet);
            changed += writes;
            // flannel's -v=2 "adding subnet" / "removing subnet": one line per peer the kernel changed for.
            if (writes > 0) {
              log.debug({ event: peer ? 'peer-programmed' : 'peer-unprogrammed', subnet: formatIpv4Net(subnet), writes },
                `${peer ? 'programmed' : 'removed'} ${this.what} for ${formatIpv4Net(subnet)}`);
            }
          } catch (err) {
            failed++;
            this.dirty.set(key, subnet);
            log.error({ event: 'peer-apply-failed', subnet: formatIpv4Net(subnet) }, `cannot program ${this.what} for ${formatIpv4Net(subnet)} (retried on the next pass): ${errorMessage(err)}`);
          }
        }
        // Only what every wanted peer already holds is safe to call stale: skip while some peer failed.
        const removedStale = removeStale && failed === 0 ? await pass.removeUnclaimed(this.wanted) : 0;
        return { changed, removedStale, failed };
      });
    } catch (err) {
      for (const [key, subnet] of subnets) this.dirty.set(key, subnet);
      this.removeStale ||= removeStale;
      log.error({ event: 'peer-sync-failed', cause }, `cannot program ${this.what}: ${errorMessage(err)}`);
      throw err;
    }
    if (result.failed && removeStale) this.removeStale = true;
    this.counts[cause] += result.changed + result.removedStale;
    if (cause === 'reconcile') {
      log.info({ event: 'peers-reconciled', peers: this.wanted.size, changed: result.changed, removedStale: result.removedStale, failed: result.failed }, `${this.what} reconciled with the leases in etcd`);
    } else if (cause === 'repair' && result.changed + result.removedStale > 0) {
      log.warn({ event: 'peers-repaired', changed: result.changed, removedStale: result.removedStale }, `put back ${this.what} that went missing or changed`);
    }
    return result;
  }
}
