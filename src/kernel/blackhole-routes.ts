import { formatIpv4Net, makeNet, type Ipv4Net } from '../ip/ipv4.js';
import { FlagsNew, AF_INET, FLANNEL_ROUTE_PROTOCOL, MAIN_TABLE, RTN_BLACKHOLE, ignoreMissing, ipBytes, mainRoutes, withNetlink } from './netlink.js';

/**
 * The metric of our blackhole routes: the highest there is, so any other route for the same prefix wins. A bridge
 * holding the lease (docker0 with --bip) gets a kernel route for it with metric 0; were the blackhole route
 * equal, whichever came first would shadow the other, and docker0 usually comes after flanneld.
 */
export const BLACKHOLE_METRIC = 0xffffffff;

/** Our blackhole routes in the main table (marked with FLANNEL_ROUTE_PROTOCOL), by destination. */
export async function flannelBlackholeRoutes(): Promise<Ipv4Net[]> {
  return withNetlink('listing blackhole routes', async (nl) =>
    (await mainRoutes(nl)).filter((r) => r.type === RTN_BLACKHOLE && r.protocol === FLANNEL_ROUTE_PROTOCOL).map((r) => makeNet(r.dst, r.dstLen)),
  );
}

/** `ip route add blackhole <subnet> proto 241 metric 4294967295`; already there is fine. */
export async function addBlackholeRoute(subnet: Ipv4Net): Promise<void> {
  await withNetlink(`adding blackhole route ${formatIpv4Net(subnet)}`, async (nl) => {
    // CREATE|REPLACE replaces only a route of the same prefix and metric, which nobody but us uses.
    await nl.newRoute(blackhole(subnet), { dst: ipBytes(subnet.ip), priority: BLACKHOLE_METRIC }, { flags: FlagsNew.CREATE | FlagsNew.REPLACE });
  });
}

/** Deletes our blackhole route for `subnet`; one that is already gone is fine. */
export async function deleteBlackholeRoute(subnet: Ipv4Net): Promise<void> {
  await withNetlink(`deleting blackhole route ${formatIpv4Net(subnet)}`, (nl) =>
    ignoreMissing(nl.delRoute(blackhole(subnet), { dst: ipBytes(subnet.ip), priority: BLACKHOLE_METRIC })),
  );
}

function blackhole(subnet: Ipv4Net) {
  return { family: AF_INET, dstLen: subnet.prefixLen, table: MAIN_TABLE, protocol: FLANNEL_ROUTE_PROTOCOL, scope: 'UNIVERSE', type: 'BLACKHOLE' } as const;
}
