import { formatIpv4, netContains, type Ipv4, type Ipv4Net } from '../ip/ipv4.js';
import { macBytes, macFromBytes, randomMac, type Mac } from '../ip/mac.js';
import { log } from '../log.js';
import { FlagsNew, ifla, AF_INET, ignoreExists, ignoreMissing, ipBytes, ipv4FromBytes, isExists, withNetlink, type RtNetlinkSocket } from './netlink.js';
import { disableIpv6 } from './sysctl.js';

/** The UDP port the kernel gives a vxlan device created without one (Linux's pre-IANA VXLAN port, flannel's default). */
const KERNEL_VXLAN_PORT = 8472;

/** What flannel's vxlan backend asks of its device. */
export interface VxlanLinkSpec {
  readonly name: string;
  readonly vni: number;
  /** Source address of the encapsulated packets: the external interface's own address. */
  readonly local: Ipv4;
  /** ifindex of the external interface. */
  readonly dev: number;
  /** Destination UDP port; 0 leaves the kernel default (8472). */
  readonly port: number;
  readonly gbp: boolean;
  readonly learning: boolean;
  readonly mtu: number;
  /** The MAC to give a device we create; undefined lets us choose a random one. */
  readonly mac?: Mac;
}

/** A vxlan device as the kernel reports it. */
export interface VxlanLinkState {
  readonly index: number;
  readonly mac: Mac;
  readonly mtu: number;
  readonly kind: string | undefined;
  readonly vni?: number;
  readonly local?: Ipv4;
  readonly dev?: number;
  readonly port: number;
  readonly group?: Ipv4;
  readonly gbp: boolean;
  readonly learning: boolean;
  readonly l2miss: boolean;
  readonly l3miss: boolean;
  readonly external: boolean;
}

type LinkMessage = Awaited<ReturnType<RtNetlinkSocket['getLinks']>>[number];

function linkState(l: LinkMessage): VxlanLinkState {
  const info = l.attrs.linkinfo ? ifla.parseInfo(l.attrs.linkinfo) : undefined;
  const vx = info?.kind === 'vxlan' && info.data ? ifla.parseVxlan(info.data) : undefined;
  const group = ipv4FromBytes(vx?.group);
  return {
    index: l.data.index ?? 0,
    mac: macFromBytes(l.attrs.address) ?? '',
    mtu: l.attrs.mtu ?? 0,
    kind: info?.kind,
    vni: vx?.id,
    local: ipv4FromBytes(vx?.local),
    dev: vx?.link || undefined,
    port: vx?.port ? vx.port.readUInt16BE(0) : KERNEL_VXLAN_PORT,
    group: group || undefined,
    gbp: vx?.gbp === true,
    learning: vx?.learning === 1,
    l2miss: vx?.l2miss === 1,
    l3miss: vx?.l3miss === 1,
    external: vx?.collectMetadata === 1,
  };
}

/** The link named `name`, or undefined. */
async function readLink(nl: RtNetlinkSocket, name: string): Promise<VxlanLinkState | undefined> {
  const link = (await nl.getLinks()).find((l) => l.attrs.ifname === name);
  return link ? linkState(link) : undefined;
}

/**
 * Why an existing device cannot serve as `spec` (undefined when it can). Like flannel: another kind, VNI, external
 * interface, local address or port, GBP, or miss notifications. Also a different learning setting, a remote or
 * group (it would add a default FDB entry flooding unknown traffic) and metadata mode, which flannel does not check.
 */
export function vxlanIncompatibility(have: VxlanLinkState, spec: VxlanLinkSpec): string | undefined {
  if (have.kind !== 'vxlan') return `it is a ${have.kind ?? 'plain'} device, not vxlan`;
  if (have.vni !== spec.vni) return `VNI ${have.vni} instead of ${spec.vni}`;
  if (have.dev !== undefined && have.dev !== spec.dev) return `external interface #${have.dev} instead of #${spec.dev}`;
  if (have.local !== undefined && have.local !== spec.local) return `local ${formatIpv4(have.local)} instead of ${formatIpv4(spec.local)}`;
  if (have.port !== (spec.port || KERNEL_VXLAN_PORT)) return `port ${have.port} instead of ${spec.port || KERNEL_VXLAN_PORT}`;
  if (have.gbp !== spec.gbp) return `gbp ${have.gbp ? 'on' : 'off'}`;
  if (have.learning !== spec.learning) return `learning ${have.learning ? 'on' : 'off'}`;
  if (have.l2miss || have.l3miss) return 'L2/L3 miss notifications on';
  if (have.group !== undefined) return `remote or group ${formatIpv4(have.group)} set`;
  if (have.external) return 'external (metadata) mode';
  return undefined;
}

async function createVxlanLink(nl: RtNetlinkSocket, spec: VxlanLinkSpec, mac: Mac): Promise<void> {
  const data = ifla.formatVxlan({
    id: spec.vni,
    link: spec.dev,
    local: ipBytes(spec.local),
    learning: spec.learning ? 1 : 0,
    ...(spec.port ? { port: Buffer.from([spec.port >> 8, spec.port & 0xff]) } : {}),
    ...(spec.gbp ? { gbp: true as const } : {}),
  });
  // `linkinfo` is typed as a Buffer, but the encoder takes the nested attribute stream formatInfo returns.
  const linkinfo = ifla.formatInfo({ kind: 'vxlan', data: data as unknown as Buffer }) as unknown as Buffer;
  await nl.newLink({ family: 0 }, { ifname: spec.name, mtu: spec.mtu, address: macBytes(mac), linkinfo }, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
}

export interface EnsuredVxlanLink {
  readonly index: number;
  readonly mac: Mac;
  /** `reused`: an existing compatible device, kept with its MAC; `created`; `replaced`: an incompatible one was deleted. */
  readonly outcome: 'reused' | 'created' | 'replaced';
}

/**
 * Makes `spec.name` a vxlan device as `spec` asks. A compatible device is reused with its MAC, so the VtepMAC peers
 * hold stays valid across restarts (only its MTU, and its MAC when `spec.mac` says otherwise, are set). An
 * incompatible one is deleted and created again, keeping the MAC of a vxlan device. Our MAC is set explicitly, so
 * udev's MACAddressPolicy never changes it after we read it.
 */
export async function ensureVxlanLink(spec: VxlanLinkSpec): Promise<EnsuredVxlanLink> {
  return withNetlink(`setting up vxlan device ${spec.name}`, async (nl) => {
    const have = await readLink(nl, spec.name);
    let outcome: EnsuredVxlanLink['outcome'] = 'created';
    if (have) {
      const why = vxlanIncompatibility(have, spec);
      if (why === undefined) {
        const mac = spec.mac ?? have.mac;
        if (mac !== have.mac || spec.mtu !== have.mtu) {
          await nl.setLink({ family: 0, index: have.index }, { mtu: spec.mtu, address: macBytes(mac) });
        }
        return { index: have.index, mac, outcome: 'reused' };
      }
      log.warn({ event: 'vxlan-device-replaced', device: spec.name, reason: why }, `${spec.name} exists with an incompatible configuration (${why}); replacing it`);
      await nl.delLink({ family: 0, index: have.index });
      outcome = 'replaced';
    }
    const mac = spec.mac ?? (have?.kind === 'vxlan' ? have.mac : randomMac());
    try {
      await createVxlanLink(nl, spec, mac);
    } catch (err) {
      // Two vxlan devices cannot share a VNI and port: name the likely culprit.
      if (isExists(err)) throw new Error(`${String(err)} (another vxlan device may already use VNI ${spec.vni} on this port)`, { cause: err });
      throw err;
    }
    const created = await readLink(nl, spec.name);
    if (!created) throw new Error(`${spec.name} vanished right after it was created`);
    return { index: created.index, mac: created.mac, outcome };
  });
}

/**
 * Gives the device `address`/32 as its only address inside `network` (a /32 creates no broadcast or subnet route;
 * the address is the source of host-to-container traffic), turns IPv6 off and brings it up.
 */
export async function configureVxlanAddress(name: string, index: number, address: Ipv4, network: Ipv4Net): Promise<void> {
  await withNetlink(`configuring ${name} (${formatIpv4(address)}/32)`, async (nl) => {
    await disableIpv6(name);
    let present = false;
    for (const a of await nl.getAddresses({ family: AF_INET })) {
      if (a.data.index !== index) continue;
      const ip = ipv4FromBytes(a.attrs.local ?? a.attrs.address);
      if (ip === address && a.data.prefixlen === 32) present = true;
      else if (ip !== undefined && netContains(network, ip)) {
        await nl.delAddress({ family: AF_INET, prefixlen: a.data.prefixlen, index }, { local: ipBytes(ip), address: ipBytes(ip) });
      }
    }
    if (!present) {
      await ignoreExists(nl.newAddress({ family: AF_INET, prefixlen: 32, index, scope: 0 }, { local: ipBytes(address), address: ipBytes(address) }, { flags: FlagsNew.CREATE | FlagsNew.EXCL }));
    }
    await nl.setLink({ family: 0, index, flags: { up: true }, change: { up: true } });
  });
}

/** Deletes every vxlan device whose name matches `name` (their neighbours, FDB entries and routes go with them). */
export async function deleteVxlanLinks(name: RegExp): Promise<string[]> {
  return withNetlink('deleting vxlan devices', async (nl) => {
    const deleted: string[] = [];
    for (const l of await nl.getLinks()) {
      const ifname = l.attrs.ifname ?? '';
      if (!name.test(ifname) || linkState(l).kind !== 'vxlan') continue;
      if (await ignoreMissing(nl.delLink({ family: 0, index: l.data.index }))) deleted.push(ifname);
    }
    return deleted;
  });
}
