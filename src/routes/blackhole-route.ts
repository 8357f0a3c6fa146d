import type { DaemonExtension } from '../daemon-extension.js';
import { errorMessage } from '../errors.js';
import { formatIpv4Net, netEquals, type Ipv4Net } from '../ip/ipv4.js';
import { addBlackholeRoute, deleteBlackholeRoute, flannelBlackholeRoutes } from '../kernel/blackhole-routes.js';
import type { Lease } from '../subnet/lease.js';
import { log } from '../log.js';

/**
 * `--ip-blackhole-route`: a blackhole route for our own lease, so that its traffic which no bridge claims (an
 * address no container holds, or no bridge at all, as with Canal) is dropped here instead of leaving by the
 * default route. Any bridge route for the lease wins over it (see BLACKHOLE_METRIC).
 *
 * Exactly one of our blackhole routes exists, for the current lease: one left for an earlier lease (a lease lost
 * while flanneld was down) is removed, since that subnet may now be another host's. Like flannel, the route is
 * checked again every `--iptables-resync` seconds. It stays on shutdown, like the rest of the state a restart
 * adopts; `flanneld teardown` removes it. Without the flag, routes a previous run left are removed.
 */
export class BlackholeRoute implements DaemonExtension {
  private subnet: Ipv4Net | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> = Promise.resolve();

  constructor(
    private readonly enabled: boolean,
    private readonly resyncSeconds: number,
  ) {}

  async leaseReady(lease: Lease): Promise<void> {
    if (!this.enabled) {
      // Leftovers of a run with the flag; failing to tidy them must not stop a daemon that was not asked for routes.
      await removeBlackholeRoutes().catch((err) => log.warn({ event: 'blackhole-route-failed' }, `cannot remove old blackhole routes: ${errorMessage(err)}`));
      return;
    }
    const keep = lease.subnet;
    await removeBlackholeRoutes(keep);
    this.subnet = keep;
    await addBlackholeRoute(keep);
    log.info({ event: 'blackhole-route', subnet: formatIpv4Net(keep) }, 'blackhole route for our subnet in place');
    if (!this.timer) {
      this.timer = setInterval(() => void this.check(), this.resyncSeconds * 1000);
      this.timer.unref();
    }
  }

  /** Stops checking; the route stays so that traffic keeps being contained across a restart. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
  }

  private check(): Promise<void> {
    this.checking = (async () => {
      const subnet = this.subnet;
      if (!subnet) return;
      try {
        if ((await flannelBlackholeRoutes()).some((r) => netEquals(r, subnet))) return;
        log.warn({ event: 'blackhole-route-missing', subnet: formatIpv4Net(subnet) }, 'our blackhole route went missing; adding it again');
        await addBlackholeRoute(subnet);
      } catch (err) {
        log.error({ event: 'blackhole-route-failed', subnet: formatIpv4Net(subnet) }, `checking the blackhole route failed: ${errorMessage(err)}`);
      }
    })();
    return this.checking;
  }
}

/** Removes our blackhole routes except the one for `keep`; `flanneld teardown` removes them all. */
export async function removeBlackholeRoutes(keep?: Ipv4Net): Promise<Ipv4Net[]> {
  const removed: Ipv4Net[] = [];
  for (const route of await flannelBlackholeRoutes()) {
    if (keep && netEquals(route, keep)) continue;
    await deleteBlackholeRoute(route);
    removed.push(route);
    log.info({ event: 'blackhole-route-removed', subnet: formatIpv4Net(route) }, 'removed a blackhole route');
  }
  return removed;
}
