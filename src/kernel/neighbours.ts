import type { Ipv4 } from '../ip/ipv4.js';
import { macBytes, macFromBytes, type Mac } from '../ip/mac.js';
import { FlagsNew, AF_BRIDGE, AF_INET, RTN_UNICAST, ignoreMissing, ipBytes, ipv4FromBytes, type RtNetlinkSocket } from './netlink.js';

/**
 * Static entries of a vxlan device, as flannel's vxlan backend programs them per peer: an ARP neighbour (peer's
 * VTEP address → VTEP MAC) and a bridge FDB entry (VTEP MAC → peer's PublicIP). Only permanent entries are ours;
 * the kernel's own (learned, incomplete) ones are never touched.
 */
export interface ArpEntry {
  readonly ip: Ipv4;
  readonly mac: Mac;
}

export interface FdbEntry {
  readonly mac: Mac;
  readonly dst: Ipv4;
}

/** Permanent entries of `family` on device `ifindex` that map an IPv4 address and a MAC, in either direction. */
async function permanentEntries(nl: RtNetlinkSocket, family: number, ifindex: number): Promise<{ ip: Ipv4; mac: Mac }[]> {
  const out: { ip: Ipv4; mac: Mac }[] = [];
  for (const n of await nl.getNeighbors({ family })) {
    if (n.data.ifindex !== ifindex || !n.data.state?.permanent) continue;
    const ip = ipv4FromBytes(n.attrs.dst);
    const mac = macFromBytes(n.attrs.lladdr);
    if (ip !== undefined && mac) out.push({ ip, mac });
  }
  return out;
}

/** The permanent ARP neighbours on device `ifindex`. */
export async function permanentArp(nl: RtNetlinkSocket, ifindex: number): Promise<ArpEntry[]> {
  return permanentEntries(nl, AF_INET, ifindex);
}

/** The permanent FDB entries with a remote IPv4 destination on vxlan device `ifindex`. */
export async function permanentFdb(nl: RtNetlinkSocket, ifindex: number): Promise<FdbEntry[]> {
  return (await permanentEntries(nl, AF_BRIDGE, ifindex)).map(({ ip, mac }) => ({ mac, dst: ip }));
}

export async function replaceArp(nl: RtNetlinkSocket, ifindex: number, e: ArpEntry): Promise<void> {
  await nl.newNeighbor(
    { family: AF_INET, ifindex, state: { permanent: true }, type: RTN_UNICAST },
    { dst: ipBytes(e.ip), lladdr: macBytes(e.mac) },
    { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
  );
}

export async function deleteArp(nl: RtNetlinkSocket, ifindex: number, ip: Ipv4): Promise<void> {
  await ignoreMissing(nl.delNeighbor({ family: AF_INET, ifindex }, { dst: ipBytes(ip) }));
}

/** Points `mac` at `dst` (NTF_SELF: the vxlan device's own table); replaces the MAC's previous destination. */
export async function replaceFdb(nl: RtNetlinkSocket, ifindex: number, e: FdbEntry): Promise<void> {
  await nl.newNeighbor(
    { family: AF_BRIDGE, ifindex, state: { permanent: true }, flags: { self: true } },
    { lladdr: macBytes(e.mac), dst: ipBytes(e.dst) },
    { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
  );
}

export async function deleteFdb(nl: RtNetlinkSocket, ifindex: number, e: FdbEntry): Promise<void> {
  await ignoreMissing(nl.delNeighbor({ family: AF_BRIDGE, ifindex, flags: { self: true } }, { lladdr: macBytes(e.mac), dst: ipBytes(e.dst) }));
}
