import { InterfaceError, errorMessage } from '../errors.js';
import { formatIpv4, parseIpv4, type Ipv4 } from '../ip/ipv4.js';
import { readLinksAndRoutes, routeTo, type LinkInfo, type RouteLookup } from '../kernel/netlink.js';

/** The host interface that carries inter-host (underlay) traffic. */
export interface ExternalInterface {
  readonly name: string;
  readonly index: number;
  /** The interface's own IPv4 address. */
  readonly address: Ipv4;
  /** What peers send to (`--public-ip`, else `address`); becomes the lease's PublicIP. */
  readonly publicIp: Ipv4;
  readonly mtu: number;
  /** Which rule picked it (`--iface-regex ^eth`, `the default route`, ...), for the log. */
  readonly selectedBy?: string;
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

/** What the choice looks at, read from the kernel once: links with their addresses, and the routes that matter. */
export interface HostView {
  readonly links: readonly LinkInfo[];
  /** The outgoing interface of the IPv4 default route of the main table, if there is one. */
  readonly defaultRouteOif?: number;
  /** The kernel's route to `--iface-can-reach`, or why it has none. Only looked up when that flag is given. */
  readonly canReachRoute?: RouteLookup | Error;
}

/** A validated InterfaceSelection: regexes compiled and addresses parsed, so bad input fails before any lookup. */
export interface ParsedSelection {
  readonly ifaces: readonly string[];
  readonly ifaceRegexes: readonly { readonly source: string; readonly regex: RegExp }[];
  readonly canReach?: Ipv4;
  readonly publicIp?: Ipv4;
}

export interface InterfaceChoice {
  readonly link: LinkInfo;
  readonly address: Ipv4;
  readonly publicIp: Ipv4;
  readonly selectedBy: string;
}

/** Checks the flags' values: an invalid regex or address is a one-line InterfaceError naming the flag. */
export function parseSelection(selection: InterfaceSelection): ParsedSelection {
  return {
    ifaces: selection.ifaces,
    ifaceRegexes: selection.ifaceRegexes.map((source) => ({ source, regex: compileGoRegex(source) })),
    canReach: selection.canReach ? flagIpv4('--iface-can-reach', selection.canReach) : undefined,
    publicIp: selection.publicIp ? flagIpv4('--public-ip', selection.publicIp) : undefined,
  };
}

function flagIpv4(flag: string, text: string): Ipv4 {
  try {
    return parseIpv4(text);
  } catch {
    throw new InterfaceError(`${flag} ${JSON.stringify(text)} is not an IPv4 address`);
  }
}

/**
 * flannel's regexes are Go (RE2) syntax, matched anywhere in the string as JavaScript's are. The one common RE2
 * form JavaScript lacks is a leading flag group such as `(?i)`; it becomes the RegExp's flags.
 */
function compileGoRegex(source: string): RegExp {
  const flagGroup = /^\(\?([a-zA-Z]+)\)/.exec(source);
  try {
    if (flagGroup && /^[ims]+$/.test(flagGroup[1])) return new RegExp(source.slice(flagGroup[0].length), flagGroup[1]);
    return new RegExp(source);
  } catch (err) {
    throw new InterfaceError(`--iface-regex ${JSON.stringify(source)} is not a valid regular expression: ${errorMessage(err).replace(/^Invalid regular expression: /, '')}`);
  }
}

const isLinkLocal = (ip: Ipv4) => ip >>> 16 === 0xa9fe;

/**
 * The addresses flannel considers for an interface, best first: unicast ones (not loopback, multicast, broadcast
 * or 0.0.0.0), global before link-local, as flannel's GetInterfaceIP4Addrs filters and sorts them.
 */
export function usableAddresses(link: LinkInfo): Ipv4[] {
  const usable = link.addresses.filter((ip) => ip !== 0 && ip >>> 24 !== 127 && ip >>> 28 !== 0xe && ip !== 0xffffffff);
  return [...usable.filter((ip) => !isLinkLocal(ip)), ...usable.filter(isLinkLocal)];
}

/**
 * The address to use on an interface picked by name or route. An explicit `--iface lo` still gets 127.0.0.1, as
 * single-machine setups rely on, where flannel would refuse an interface with only a loopback address.
 */
function firstAddress(link: LinkInfo): Ipv4 | undefined {
  return usableAddresses(link)[0] ?? link.addresses[0];
}

function describeLinks(links: readonly LinkInfo[]): string {
  return links.map((l) => `${l.name} [${l.addresses.map(formatIpv4).join(' ')}]`).join(', ');
}

/**
 * Picks the interface for inter-host traffic exactly in flannel's order (main.go): each `--iface` (a name, or an
 * IPv4 address some interface holds) in order; then each `--iface-regex`, tried against every interface's
 * addresses before any interface's name; then `--iface-can-reach`, the interface of the kernel's route to that
 * address with the route's preferred source. The first match wins; if any of these was given and nothing
 * matched, that is an error naming what was asked.
 *
 * With none given: the interface that holds `--public-ip`, as flannel does; if no interface holds it (the host is
 * behind NAT), the interface of the default route, while the lease still advertises `--public-ip`. Without
 * `--public-ip`, the default route's interface and its first address.
 */
export function chooseInterface(selection: ParsedSelection, host: HostView): InterfaceChoice {
  const { publicIp } = selection;
  const misses: string[] = [];
  const chosen = chooseAsked(selection, host, misses);
  const withPublicIp = (c: Omit<InterfaceChoice, 'publicIp'>): InterfaceChoice => ({ ...c, publicIp: publicIp ?? c.address });
  if (chosen) return withPublicIp(chosen);
  if (misses.length) {
    throw new InterfaceError(`no interface matches ${misses.join(', ')}; interfaces: ${describeLinks(host.links)}`);
  }

  if (publicIp !== undefined) {
    const holder = host.links.find((l) => l.addresses.includes(publicIp));
    if (holder) return withPublicIp({ link: holder, address: publicIp, selectedBy: `--public-ip ${formatIpv4(publicIp)}` });
  }
  const link = host.links.find((l) => l.index === host.defaultRouteOif);
  const natNote = publicIp !== undefined ? ` (no interface holds --public-ip ${formatIpv4(publicIp)}: advertising it as given, as behind NAT)` : '';
  if (!link) {
    throw new InterfaceError(`no IPv4 default route to pick an interface from${natNote}; use --iface NAME, --iface IP, --iface-regex or --iface-can-reach`);
  }
  const address = firstAddress(link);
  if (address === undefined) throw new InterfaceError(`default route interface ${link.name} has no IPv4 address`);
  return withPublicIp({ link, address, selectedBy: `the default route${natNote}` });
}

/** The explicit flags in flannel's order; each one that does not match adds why to `misses`. */
function chooseAsked(selection: ParsedSelection, host: HostView, misses: string[]): Omit<InterfaceChoice, 'publicIp'> | undefined {
  for (const wanted of selection.ifaces) {
    const found = byNameOrAddress(host.links, wanted);
    if (typeof found !== 'string') return { ...found, selectedBy: `--iface ${wanted}` };
    misses.push(`--iface ${wanted}${found ? ` (${found})` : ''}`);
  }
  for (const { source, regex } of selection.ifaceRegexes) {
    const found = byRegex(host.links, regex);
    if (found) return { ...found, selectedBy: `--iface-regex ${source}` };
    misses.push(`--iface-regex ${source}`);
  }
  if (selection.canReach !== undefined) {
    const asked = `--iface-can-reach ${formatIpv4(selection.canReach)}`;
    const route = host.canReachRoute;
    const link = route && !(route instanceof Error) ? host.links.find((l) => l.index === route.oif) : undefined;
    const address = link && route && !(route instanceof Error) ? (route.prefsrc ?? firstAddress(link)) : undefined;
    if (link && address !== undefined) return { link, address, selectedBy: asked };
    misses.push(`${asked} (${route instanceof Error ? errorMessage(route) : link ? `${link.name} has no IPv4 address` : 'no route'})`);
  }
  return undefined;
}

/** `--iface` is an IPv4 address some interface holds, or an interface name. A string result says why it missed. */
function byNameOrAddress(links: readonly LinkInfo[], wanted: string): { link: LinkInfo; address: Ipv4 } | string {
  let ip: Ipv4 | undefined;
  try {
    ip = parseIpv4(wanted);
  } catch {
    ip = undefined;
  }
  if (ip !== undefined) {
    const link = links.find((l) => l.addresses.includes(ip));
    return link ? { link, address: ip } : 'no interface holds it';
  }
  const link = links.find((l) => l.name === wanted);
  if (!link) return 'no such interface';
  const address = firstAddress(link);
  return address === undefined ? 'it has no IPv4 address' : { link, address };
}

/**
 * flannel tries a regex against the addresses of every interface first (the matching address is used), and only
 * then against names (the interface's first address is used). Unlike flannel, an interface whose name matches
 * but that has no IPv4 address is passed over for the next one, rather than failing the whole regex.
 */
function byRegex(links: readonly LinkInfo[], regex: RegExp): { link: LinkInfo; address: Ipv4 } | undefined {
  for (const link of links) {
    const address = usableAddresses(link).find((ip) => regex.test(formatIpv4(ip)));
    if (address !== undefined) return { link, address };
  }
  for (const link of links) {
    const address = regex.test(link.name) ? firstAddress(link) : undefined;
    if (address !== undefined) return { link, address };
  }
  return undefined;
}

/** Reads the host's links and routes and applies chooseInterface. */
export async function findExternalInterface(selection: InterfaceSelection): Promise<ExternalInterface> {
  const parsed = parseSelection(selection);
  const { links, routes } = await readLinksAndRoutes();
  // Like flannel's GetDefaultGatewayInterface: the first default route of the main table that names an interface.
  const defaultRouteOif = routes.find((r) => r.dstLen === 0 && r.oif)?.oif;
  let canReachRoute: RouteLookup | Error | undefined;
  if (parsed.canReach !== undefined) {
    canReachRoute = await routeTo(parsed.canReach).catch((err: Error) => new Error(`no route: ${errorMessage(err.cause ?? err)}`));
  }
  const choice = chooseInterface(parsed, { links: [...links].sort((a, b) => a.index - b.index), defaultRouteOif, canReachRoute });
  const { link } = choice;
  return { name: link.name, index: link.index, address: choice.address, publicIp: choice.publicIp, mtu: link.mtu, selectedBy: choice.selectedBy };
}

export function describeInterface(i: ExternalInterface): string {
  const by = i.selectedBy ? `, chosen by ${i.selectedBy}` : '';
  return `${i.name} (${formatIpv4(i.address)}, mtu ${i.mtu}), public IP ${formatIpv4(i.publicIp)}${by}`;
}
