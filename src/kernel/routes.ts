import { formatIpv4Net, netContains, type Ipv4, type Ipv4Net } from '../ip/ipv4.js';
import { FlagsNew, AF_INET, FLANNEL_ROUTE_PROTOCOL, MAIN_TABLE, RTNH_F_ONLINK, RTN_UNICAST, ignoreMissing, ipBytes, mainRoutes, withNetlink, type RouteInfo, type RtNetlinkSocket } from './netlink.js';

/**
 * A peer route as we install it: `dst via gateway dev oif [onlink] proto 241`. On a device that is not ours (the
 * external interface: host-gw, DirectRouting), reconcile and teardown only ever delete gateway routes carrying our
 * protocol, so an operator's route or one flannel left (`proto boot`) stays. On our own vxlan device every route is
 * ours whoever added it (a flannel that ran before us adds them as `proto boot`): reconcile deletes those inside the
 * Network that no lease claims, and teardown deletes the device with them.
 */
export interface PeerRoute {
  readonly dst: Ipv4Net;
  readonly gateway: Ipv4;
  readonly oif: number;
  readonly onlink: boolean;
}

/** True when the kernel holds `want` as we install it, our protocol included (a route of flannel's is re-tagged). */
function routeMatches(have: RouteInfo | undefined, want: PeerRoute): boolean {
  return have !== undefined && have.gateway === want.gateway && have.oif === want.oif && have.onlink === want.onlink && have.protocol === FLANNEL_ROUTE_PROTOCOL;
}

/** A peer route of ours (a gateway route with our protocol), whatever device it uses. */
export function isOwnPeerRoute(r: RouteInfo): boolean {
  return r.protocol === FLANNEL_ROUTE_PROTOCOL && r.type === RTN_UNICAST && r.gateway !== undefined;
}

/** Whether `r`'s destination lies inside `network` (the Network itself included). */
function routeWithin(r: RouteInfo, network: Ipv4Net): boolean {
  return r.dstLen >= network.prefixLen && netContains(network, r.dst);
}

/**
 * Whether `ip` is on a subnet directly connected through `oif`, decided as the kernel would route it: the most
 * specific route covering `ip` has no gateway and leaves through `oif` (flannel asks `ip route get` the same).
 */
export function directlyConnected(routes: readonly RouteInfo[], ip: Ipv4, oif: number): boolean {
  let best: RouteInfo | undefined;
  for (const r of routes) {
    if (!netContains({ ip: r.dst, prefixLen: r.dstLen }, ip)) continue;
    if (!best || r.dstLen > best.dstLen) best = r;
  }
  return best !== undefined && best.type === RTN_UNICAST && best.gateway === undefined && best.oif === oif;
}

/**
 * The main table as read at the start of a pass over peers, kept up to date with the pass's own writes so that
 * each decision sees what the kernel holds now.
 */
export class RouteSnapshot {
  private constructor(
    private readonly nl: RtNetlinkSocket,
    private readonly routes: RouteInfo[],
  ) {}

  static async read(nl: RtNetlinkSocket): Promise<RouteSnapshot> {
    return new RouteSnapshot(nl, await mainRoutes(nl));
  }

  /** The unicast route for exactly `dst`, if any. */
  get(dst: Ipv4Net): RouteInfo | undefined {
    return this.routes.find((r) => r.dst === dst.ip && r.dstLen === dst.prefixLen && r.type === RTN_UNICAST);
  }

  directlyConnected(ip: Ipv4, oif: number): boolean {
    return directlyConnected(this.routes, ip, oif);
  }

  /** Installs `want` unless the kernel already holds it exactly; returns 1 when it wrote, else 0. */
  async ensure(want: PeerRoute): Promise<number> {
    if (routeMatches(this.get(want.dst), want)) return 0;
    await replaceRoute(this.nl, want);
    this.forget(want.dst);
    this.routes.push({ dst: want.dst.ip, dstLen: want.dst.prefixLen, gateway: want.gateway, oif: want.oif, onlink: want.onlink, protocol: FLANNEL_ROUTE_PROTOCOL, type: RTN_UNICAST });
    return 1;
  }

  /**
   * Deletes every route inside `network` that `isOurs` and whose destination no peer `claimed` (leases gone while we
   * were down); returns how many.
   */
  async deleteUnclaimed(network: Ipv4Net, isOurs: (r: RouteInfo) => boolean, claimed: (dst: Ipv4Net) => boolean): Promise<number> {
    let deleted = 0;
    for (const r of [...this.routes]) {
      if (isOurs(r) && routeWithin(r, network) && !claimed({ ip: r.dst, prefixLen: r.dstLen })) deleted += await this.delete(r);
    }
    return deleted;
  }

  async delete(have: RouteInfo): Promise<number> {
    await deleteRoute(this.nl, have);
    this.forget({ ip: have.dst, prefixLen: have.dstLen });
    return 1;
  }

  private forget(dst: Ipv4Net): void {
    const known = this.get(dst);
    if (known) this.routes.splice(this.routes.indexOf(known), 1);
  }
}

/** Installs `route`, atomically replacing whatever route the main table holds for its destination. */
async function replaceRoute(nl: RtNetlinkSocket, route: PeerRoute): Promise<void> {
  await nl.newRoute(
    {
      family: AF_INET,
      dstLen: route.dst.prefixLen,
      table: MAIN_TABLE,
      protocol: FLANNEL_ROUTE_PROTOCOL,
      scope: 'UNIVERSE',
      type: 'UNICAST',
      flags: route.onlink ? { __unknown: RTNH_F_ONLINK } : {},
    },
    { dst: ipBytes(route.dst.ip), gateway: ipBytes(route.gateway), oif: route.oif },
    { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
  );
}

/** Deletes the main-table route `have` exactly (destination, gateway, device); one already gone is fine. */
async function deleteRoute(nl: RtNetlinkSocket, have: RouteInfo): Promise<void> {
  await ignoreMissing(
    nl.delRoute(
      { family: AF_INET, dstLen: have.dstLen, table: MAIN_TABLE, protocol: have.protocol, scope: 'NOWHERE' },
      { dst: ipBytes(have.dst), ...(have.gateway !== undefined ? { gateway: ipBytes(have.gateway) } : {}), ...(have.oif ? { oif: have.oif } : {}) },
    ),
  );
}

/** Deletes every peer route of ours inside `network` (`flanneld teardown`); returns how many there were. */
export async function deleteOwnRoutes(network: Ipv4Net): Promise<number> {
  return withNetlink(`deleting flannel-ts routes in ${formatIpv4Net(network)}`, async (nl) =>
    (await RouteSnapshot.read(nl)).deleteUnclaimed(network, isOwnPeerRoute, () => false),
  );
}
