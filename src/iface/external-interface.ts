import { InterfaceError } from '../errors.js';
import { formatIpv4, parseIpv4, type Ipv4 } from '../ip/ipv4.js';
import { readLinksAndRoutes, type LinkInfo } from '../kernel/netlink.js';

/** The host interface that carries inter-host (underlay) traffic. */
export interface ExternalInterface {
  readonly name: string;
  readonly index: number;
  /** The interface's own IPv4 address. */
  readonly address: Ipv4;
  /** What peers send to (`--public-ip`, else `address`); becomes the lease's PublicIP. */
  readonly publicIp: Ipv4;
  readonly mtu: number;
}

/** How the operator asked for the interface: flannel's `--iface`, `--iface-regex`, `--iface-can-reach`, `--public-ip`. */
export interface InterfaceSelection {
  /** Names or IPv4 addresses, tried in order. */
  readonly ifaces: readonly string[];
  /** Regular expressions over addresses, then names, tried after `ifaces`. */
  readonly ifaceRegexes: readonly string[];
  /** An address whose route picks the interface. */
  readonly canReach: string;
  readonly publicIp: string;
}

/**
 * Picks the interface for inter-host traffic like flannel: each `--iface` (a name or an IPv4 address) in order,
 * first match wins; with none given, the interface of the IPv4 default route and its first address.
 */
export async function findExternalInterface(selection: InterfaceSelection): Promise<ExternalInterface> {
  const { ifaces, publicIp } = selection;
  const { links, routes } = await readLinksAndRoutes();
  let chosen: { link: LinkInfo; address: Ipv4 } | undefined;
  if (ifaces.length) {
    for (const wanted of ifaces) {
      chosen = matchInterface(links, wanted);
      if (chosen) break;
    }
    if (!chosen) throw new InterfaceError(`no interface matches --iface ${ifaces.join(',')} (by name or IPv4 address)`);
  } else {
    const defaultRoute = routes.find((r) => r.dstLen === 0 && r.oif);
    const link = links.find((l) => l.index === defaultRoute?.oif);
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
