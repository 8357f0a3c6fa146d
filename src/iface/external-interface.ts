import { createRtNetlink } from 'netlink';
import type { ExternalInterface } from '../backend/backend.js';
import { InterfaceError } from '../errors.js';
import { formatIpv4, parseIpv4, type Ipv4 } from '../ip/ipv4.js';

interface LinkInfo {
  readonly name: string;
  readonly index: number;
  readonly mtu: number;
  readonly addresses: Ipv4[];
}

const AF_INET = 2;

function ipv4FromBytes(bytes: Uint8Array | undefined): Ipv4 | undefined {
  return bytes && bytes.length === 4 ? ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0 : undefined;
}

/** Links with their IPv4 addresses, and the index of the link holding the IPv4 default route, over rtnetlink. */
async function readLinks(): Promise<{ links: LinkInfo[]; defaultRouteIndex?: number }> {
  const nl = createRtNetlink();
  try {
    const [links, addresses, routes] = [await nl.getLinks(), await nl.getAddresses(), await nl.getRoutes()];
    const result = links.map((l) => ({
      name: l.attrs.ifname ?? `if${l.data.index}`,
      index: l.data.index ?? 0,
      mtu: l.attrs.mtu ?? 1500,
      addresses: addresses
        .filter((a) => a.data.family === AF_INET && a.data.index === l.data.index)
        .map((a) => ipv4FromBytes(a.attrs.local ?? a.attrs.address))
        .filter((ip): ip is Ipv4 => ip !== undefined),
    }));
    const def = routes.find((r) => r.data.family === AF_INET && r.data.dstLen === 0 && r.attrs.table === 254 && r.attrs.oif);
    return { links: result, defaultRouteIndex: def?.attrs.oif };
  } finally {
    nl.socket.close();
  }
}

/**
 * Picks the interface for inter-host traffic like flannel: each `--iface` (a name or an IPv4 address) in order,
 * first match wins; with none given, the interface of the IPv4 default route and its first address.
 */
export async function findExternalInterface(ifaces: readonly string[], publicIp: string): Promise<ExternalInterface> {
  const { links, defaultRouteIndex } = await readLinks();
  let chosen: { link: LinkInfo; address: Ipv4 } | undefined;
  if (ifaces.length) {
    for (const wanted of ifaces) {
      chosen = matchInterface(links, wanted);
      if (chosen) break;
    }
    if (!chosen) throw new InterfaceError(`no interface matches --iface ${ifaces.join(',')} (by name or IPv4 address)`);
  } else {
    const link = links.find((l) => l.index === defaultRouteIndex);
    if (!link) throw new InterfaceError('no IPv4 default route to pick an interface from; use --iface NAME or --iface IP');
    if (!link.addresses.length) throw new InterfaceError(`default route interface ${link.name} has no IPv4 address`);
    chosen = { link, address: link.addresses[0] };
  }
  let advertised = chosen.address;
  if (publicIp) {
    try {
      advertised = parseIpv4(publicIp);
    } catch {
      throw new InterfaceError(`--public-ip ${JSON.stringify(publicIp)} is not an IPv4 address`);
    }
  }
  return { name: chosen.link.name, index: chosen.link.index, address: chosen.address, publicIp: advertised, mtu: chosen.link.mtu };
}

function matchInterface(links: LinkInfo[], wanted: string): { link: LinkInfo; address: Ipv4 } | undefined {
  let ip: Ipv4 | undefined;
  try {
    ip = parseIpv4(wanted);
  } catch {
    ip = undefined;
  }
  if (ip !== undefined) {
    const link = links.find((l) => l.addresses.includes(ip));
    return link ? { link, address: ip } : undefined;
  }
  const link = links.find((l) => l.name === wanted);
  if (!link) return undefined;
  if (!link.addresses.length) throw new InterfaceError(`interface ${wanted} has no IPv4 address`);
  return { link, address: link.addresses[0] };
}

export function describeInterface(i: ExternalInterface): string {
  return `${i.name} (${formatIpv4(i.address)}, mtu ${i.mtu}), public IP ${formatIpv4(i.publicIp)}`;
}
