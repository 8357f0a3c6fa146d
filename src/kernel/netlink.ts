import { createRtNetlink, rt, type NetlinkMessage, type RtNetlinkSocket } from 'netlink';
import { KernelError, errorMessage } from '../errors.js';
import { formatIpv4, type Ipv4 } from '../ip/ipv4.js';

/**
 * The one place that talks rtnetlink: constants, byte conversions and the socket lifetime shared by every module
 * that reads or programs links, addresses, routes and neighbours.
 */

export const AF_INET = 2;
/** AF_BRIDGE: FDB entries of a vxlan device live in the bridge family. */
export const AF_BRIDGE = 7;
export const MAIN_TABLE = 254;
/**
 * rtm_protocol of the routes flanneld adds (`ip route` shows `proto 241`): values from RTPROT_STATIC up are not
 * interpreted by the kernel, and marking ours lets a restart or `flanneld teardown` find them without guessing.
 */
export const FLANNEL_ROUTE_PROTOCOL = 241 as rt.RouteProtocol;
/** RTNH_F_ONLINK: `netlink`'s RouteFlags has no onlink, and `{ onlink: true }` is dropped silently. */
export const RTNH_F_ONLINK = 4;
/** rtm_type (and ndm_type) values policy code compares with RouteInfo.type. */
export const RTN_UNICAST = 1;
export const RTN_BLACKHOLE = 6;

/** rtnetlink multicast group of link notifications (RTNLGRP_LINK). */
export const RTNLGRP_LINK = 1;
/** nlmsg_type of a link deletion notification. */
export const RTM_DELLINK = 17;
/** struct ifinfomsg: family(1) pad(1) type(2) index(4) ... */
const IFINFOMSG_INDEX_OFFSET = 4;

export type { RtNetlinkSocket };
/** Request flags and the link-info codec of the `netlink` package, so kernel modules import netlink names from here. */
export { FlagsNew, ifla } from 'netlink';

export function ipBytes(ip: Ipv4): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ip >>> 0);
  return b;
}

export function ipv4FromBytes(bytes: Uint8Array | undefined): Ipv4 | undefined {
  return bytes && bytes.length === 4 ? ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0 : undefined;
}

/** Runs `fn` on a fresh rtnetlink socket, closed afterwards; failures become a KernelError saying what was being done. */
export async function withNetlink<T>(what: string, fn: (nl: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const nl = createRtNetlink();
  try {
    return await fn(nl);
  } catch (err) {
    throw new KernelError(`${what}: ${errorMessage(err)}`, { cause: err });
  } finally {
    nl.socket.close();
  }
}

/**
 * Opens an rtnetlink socket that receives the kernel's notifications of multicast `group`. It does not keep the
 * process alive; the caller closes it with `socket.close()`.
 */
export function subscribeRtNetlink(group: number): RtNetlinkSocket {
  const nl = createRtNetlink();
  nl.socket.addMembership(group);
  nl.socket.unref();
  return nl;
}

/** The ifindex of the link a RTM_DELLINK notification reports deleted; undefined for any other message. */
export function deletedLinkIndex(m: NetlinkMessage): number | undefined {
  if (m.type !== RTM_DELLINK || m.data.length < IFINFOMSG_INDEX_OFFSET + 4) return undefined;
  return m.data.readInt32LE(IFINFOMSG_INDEX_OFFSET);
}

export async function linkIndex(nl: RtNetlinkSocket, name: string): Promise<number> {
  const link = (await nl.getLinks()).find((l) => l.attrs.ifname === name);
  if (!link?.data.index) throw new KernelError(`no link named ${name}`);
  return link.data.index;
}

export function isExists(err: unknown): boolean {
  return /EEXIST|File exists/i.test(errorMessage(err));
}

function isNotFound(err: unknown): boolean {
  return /ENOENT|ESRCH|ENODEV|No such/i.test(errorMessage(err));
}

/** Awaits `op`; a failure `fine` accepts resolves false instead of rejecting. True if `op` itself succeeded. */
async function succeededUnless(op: Promise<unknown>, fine: (err: unknown) => boolean): Promise<boolean> {
  try {
    await op;
    return true;
  } catch (err) {
    if (!fine(err)) throw err;
    return false;
  }
}

/** Awaits a delete for which "already gone" is fine; true if it deleted something, false if it was gone. */
export function ignoreMissing(op: Promise<unknown>): Promise<boolean> {
  return succeededUnless(op, isNotFound);
}

/** Awaits a create for which "already there" is fine; true if it created something, false if it was there. */
export function ignoreExists(op: Promise<unknown>): Promise<boolean> {
  return succeededUnless(op, isExists);
}

/** A link with its IPv4 addresses. */
export interface LinkInfo {
  readonly name: string;
  readonly index: number;
  readonly mtu: number;
  readonly addresses: Ipv4[];
}

/** An IPv4 route of the main table, reduced to what policy code compares. */
export interface RouteInfo {
  readonly dst: Ipv4;
  readonly dstLen: number;
  readonly gateway?: Ipv4;
  readonly oif?: number;
  /** rtm_protocol: who installed it (2 kernel, 3 boot, 4 static, ..., FLANNEL_ROUTE_PROTOCOL for ours). */
  readonly protocol: number;
  /** rtm_type: 1 unicast, 6 blackhole, ... */
  readonly type: number;
  /** The gateway is used as on-link even though no address of ours covers it. */
  readonly onlink: boolean;
}

/** Every link with its IPv4 addresses, and the IPv4 routes of the main table. */
export async function readLinksAndRoutes(): Promise<{ links: LinkInfo[]; routes: RouteInfo[] }> {
  return withNetlink('reading links, addresses and routes', async (nl) => {
    const [links, addresses, routes] = [await nl.getLinks(), await nl.getAddresses(), await nl.getRoutes()];
    return {
      links: links.map((l) => ({
        name: l.attrs.ifname ?? `if${l.data.index}`,
        index: l.data.index ?? 0,
        mtu: l.attrs.mtu ?? 1500,
        addresses: addresses
          .filter((a) => a.data.family === AF_INET && a.data.index === l.data.index)
          .map((a) => ipv4FromBytes(a.attrs.local ?? a.attrs.address))
          .filter((ip): ip is Ipv4 => ip !== undefined),
      })),
      routes: mainTableRoutes(routes),
    };
  });
}

/** Where the kernel would send a packet for `dst` (`ip route get`): the outgoing interface and preferred source. */
export interface RouteLookup {
  readonly oif: number;
  readonly prefsrc?: Ipv4;
}

/**
 * Asks the kernel for its route to `dst` (RTM_GETROUTE, what `ip route get` does), so policy rules, onlink and
 * metrics are resolved exactly as for real traffic. A destination without a usable route (unreachable, blackhole)
 * is a KernelError naming it.
 */
export async function routeTo(dst: Ipv4): Promise<RouteLookup> {
  return withNetlink(`looking up the route to ${formatIpv4(dst)}`, async (nl) => {
    const [route] = await nl.getRoute({ family: AF_INET, dstLen: 32 }, { dst: ipBytes(dst) });
    if (!route?.attrs.oif) throw new Error('the kernel returned no outgoing interface');
    return { oif: route.attrs.oif, prefsrc: ipv4FromBytes(route.attrs.prefsrc) };
  });
}

export async function readRoutes(): Promise<RouteInfo[]> {
  return withNetlink('reading routes', mainRoutes);
}

/** The IPv4 routes of the main table, read on an open socket. */
export async function mainRoutes(nl: RtNetlinkSocket): Promise<RouteInfo[]> {
  return mainTableRoutes(await nl.getRoutes({ family: AF_INET }));
}

/** `netlink` reports known enum values by name and unknown ones as numbers; policy code compares numbers. */
function enumValue<E extends Record<string, string | number>>(values: E, v: unknown): number {
  return typeof v === 'string' ? Number(values[v]) : Number(v ?? 0);
}

function mainTableRoutes(routes: Awaited<ReturnType<RtNetlinkSocket['getRoutes']>>): RouteInfo[] {
  return routes
    .filter((r) => r.data.family === AF_INET && (r.attrs.table ?? r.data.table) === MAIN_TABLE)
    .map((r) => ({
      dst: ipv4FromBytes(r.attrs.dst) ?? 0,
      dstLen: r.data.dstLen ?? 0,
      gateway: ipv4FromBytes(r.attrs.gateway),
      oif: r.attrs.oif,
      protocol: enumValue(rt.RouteProtocol, r.data.protocol),
      type: enumValue(rt.RouteType, r.data.type),
      onlink: ((r.data.flags?.__unknown ?? 0) & RTNH_F_ONLINK) !== 0,
    }));
}
