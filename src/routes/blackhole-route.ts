import type { DaemonExtension } from '../daemon-extension.js';
import { errorMessage } from '../errors.js';
import { formatIpv4Net, netEquals, type Ipv4Net } from '../ip/ipv4.js';
import { addBlackholeRoute, deleteBlackholeRoute, flannelBlackholeRoutes } from '../kernel/blackhole-routes.js';
import type { Lease } from '../subnet/lease.js';
import { log } from '../log.js';
import { StateKeeper, type KeptItem } from '../state-keeper.js';

/**
 * `--ip-blackhole-route`: a blackhole route for our own lease, so that its traffic which no bridge claims (an
 * address no container holds, or no bridge at all, as with Canal) is dropped here instead of leaving by the
 * default route. Any bridge route for the lease wins over it (see BLACKHOLE_METRIC).
 *
 * Exactly one of our blackhole routes exists, for the current lease: one left for an earlier lease (a lease lost
 * while flanneld was down) is removed, since that subnet may now be another host's. Like flannel, the route is
 * checked again every `--iptables-resync` seconds, by a StateKeeper: a check never runs while the lease changes, so it
 * cannot put back the route of the subnet we just gave up. It stays on shutdown, like the rest of the state a restart
 * adopts; `flanneld teardown` removes it. Without the flag, routes a previous run left are removed once, at startup.
 */
export class BlackholeRoute implements DaemonExtension {
  private readonly keeper: StateKeeper;
  private started = false;

  constructor(
    private readonly enabled: boolean,
    resyncSeconds: number,
  ) {
    this.keeper = new StateKeeper({
      resyncSeconds,
      what: 'blackhole route',
      keysField: 'subnets',
      events: { missing: 'blackhole-route-missing', failed: 'blackhole-route-failed', recovered: 'blackhole-route-recovered', resynced: 'blackhole-route-resynced' },
    });
  }

  async leaseReady(lease: Lease): Promise<void> {
    const first = !this.started;
    this.started = true;
    if (!this.enabled) {
      // Leftovers of a run with the flag; failing to tidy them must not stop a daemon that was not asked for routes.
      if (first) await removeBlackholeRoutes().catch((err) => log.warn({ event: 'blackhole-route-failed' }, `cannot remove old blackhole routes: ${errorMessage(err)}`));
      return;
    }
    const subnet = lease.subnet;
    const failed = await this.keeper.apply([keptBlackholeRoute(subnet)]);
    const failure = failed.get(formatIpv4Net(subnet));
    if (failure) throw failure;
    this.keeper.report();
    log.info({ event: 'blackhole-route', subnet: formatIpv4Net(subnet) }, 'blackhole route for our subnet in place');
  }

  /** Stops checking; the route stays so that traffic keeps being contained across a restart. */
  stop(): Promise<void> {
    return this.keeper.stop();
  }
}

/** Our blackhole route for `subnet`, written as the only one of ours. */
function keptBlackholeRoute(subnet: Ipv4Net): KeptItem {
  const key = formatIpv4Net(subnet);
  return {
    key,
    write: async () => {
      await removeBlackholeRoutes(subnet);
      await addBlackholeRoute(subnet);
    },
    check: async () =>
      (await flannelBlackholeRoutes()).some((r) => netEquals(r, subnet))
        ? undefined
        : { fields: { subnet: key }, message: 'our blackhole route went missing; adding it again' },
  };
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
