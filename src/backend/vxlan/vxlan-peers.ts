import type { Ipv4, Ipv4Net } from '../../ip/ipv4.js';
import type { Mac } from '../../ip/mac.js';
import { withNetlink, type RouteInfo, type RtNetlinkSocket } from '../../kernel/netlink.js';
import { deleteArp, deleteFdb, permanentArp, permanentFdb, replaceArp, replaceFdb } from '../../kernel/neighbours.js';
import { RouteSnapshot, isOwnPeerRoute } from '../../kernel/routes.js';
import { subnetKey } from '../../subnet/subnet-key.js';
import type { PeerDriver, PeerPass, WantedPeer } from '../peer-sync.js';

/** What a peer's vxlan lease asks for: its VTEP (MAC) and the address its encapsulated packets go to. */
export interface VxlanPeer {
  readonly publicIp: Ipv4;
  readonly vtepMac: Mac;
}

export interface VxlanPeersOptions {
  readonly device: { readonly name: string; readonly index: number };
  readonly extIfaceIndex: number;
  readonly network: Ipv4Net;
  readonly directRouting: boolean;
}

/**
 * Per peer, as flannel's vxlan backend since v0.9: an FDB entry (VtepMAC → PublicIP), a permanent neighbour (the
 * peer's lease address → VtepMAC) and, last, the route `<subnet> via <lease address> dev flannel.<VNI> onlink`, so the
 * kernel never has to resolve anything. With DirectRouting, a peer on our own L2 subnet gets a plain route via its
 * PublicIP on the external interface instead. The FDB entry comes before the neighbour so that when a peer's
 * VtepMAC changes, the neighbour never points at a MAC the device cannot send to.
 */
export function vxlanPeerDriver(opts: VxlanPeersOptions): PeerDriver<VxlanPeer> {
  return {
    pass: (fn) =>
      withNetlink(`programming vxlan peers on ${opts.device.name}`, async (nl) => {
        // Fails (ENODEV) when the device is gone, rather than reading an empty table as "nothing programmed".
        await nl.getLink({ family: 0, index: opts.device.index });
        const routes = await RouteSnapshot.read(nl);
        const arp = new Map((await permanentArp(nl, opts.device.index)).map((e) => [e.ip, e.mac]));
        const fdb = new Map((await permanentFdb(nl, opts.device.index)).map((e) => [e.mac, e.dst]));
        return fn(new VxlanPass(nl, opts, routes, arp, fdb));
      }),
  };
}

class VxlanPass implements PeerPass<VxlanPeer> {
  private readonly dev: number;

  constructor(
    private readonly nl: RtNetlinkSocket,
    private readonly opts: VxlanPeersOptions,
    private readonly routes: RouteSnapshot,
    private readonly arp: Map<Ipv4, Mac>,
    private readonly fdb: Map<Mac, Ipv4>,
  ) {
    this.dev = opts.device.index;
  }

  async ensure(subnet: Ipv4Net, want: VxlanPeer): Promise<number> {
    const leaseIp = subnet.ip;
    const direct = this.opts.directRouting && this.routes.directlyConnected(want.publicIp, this.opts.extIfaceIndex);
    const previousMac = this.arp.get(leaseIp);
    let changed = 0;
    if (!direct) {
      if (this.fdb.get(want.vtepMac) !== want.publicIp) {
        await replaceFdb(this.nl, this.dev, { mac: want.vtepMac, dst: want.publicIp });
        this.fdb.set(want.vtepMac, want.publicIp);
        changed++;
      }
      if (previousMac !== want.vtepMac) {
        await replaceArp(this.nl, this.dev, { ip: leaseIp, mac: want.vtepMac });
        this.arp.set(leaseIp, want.vtepMac);
        changed++;
      }
    }
    changed += await this.routes.ensure(
      direct
        ? { dst: subnet, gateway: want.publicIp, oif: this.opts.extIfaceIndex, onlink: false }
        : { dst: subnet, gateway: leaseIp, oif: this.dev, onlink: true },
    );
    // What the peer no longer uses: its neighbour once routed directly, the FDB entry of a replaced VtepMAC.
    if (direct && previousMac !== undefined) changed += await this.dropArp(leaseIp);
    if (previousMac !== undefined && (direct || previousMac !== want.vtepMac)) changed += await this.dropFdbIfUnused(previousMac);
    return changed;
  }

  async remove(subnet: Ipv4Net): Promise<number> {
    let changed = 0;
    const route = this.routes.get(subnet);
    // The route goes first, so no packet is sent towards a neighbour that is about to disappear.
    if (route && this.isOurs(route)) changed += await this.routes.delete(route);
    const mac = this.arp.get(subnet.ip);
    if (mac !== undefined) changed += (await this.dropArp(subnet.ip)) + (await this.dropFdbIfUnused(mac));
    return changed;
  }

  async removeUnclaimed(wanted: ReadonlyMap<string, WantedPeer<VxlanPeer>>): Promise<number> {
    let changed = await this.routes.deleteUnclaimed(this.opts.network, (r) => this.isOurs(r), (dst) => wanted.has(subnetKey(dst)));
    const claimed = new Set([...wanted.values()].map((p) => p.subnet.ip));
    for (const ip of [...this.arp.keys()]) if (!claimed.has(ip)) changed += await this.dropArp(ip);
    // The ARP table no longer changes below, so the MACs it resolves to are collected once, not per FDB entry.
    const resolved = new Set(this.arp.values());
    for (const mac of [...this.fdb.keys()]) changed += await this.dropFdbIfUnused(mac, resolved);
    return changed;
  }

  /** Routes through our device are ours; elsewhere only those carrying our protocol (DirectRouting's). */
  private isOurs(r: RouteInfo): boolean {
    return r.oif === this.dev || isOwnPeerRoute(r);
  }

  private async dropArp(ip: Ipv4): Promise<number> {
    await deleteArp(this.nl, this.dev, ip);
    this.arp.delete(ip);
    return 1;
  }

  /** Deletes the FDB entry of `mac` unless a neighbour still resolves to it (`resolved`: the ARP table's MACs, if already collected). */
  private async dropFdbIfUnused(mac: Mac, resolved: ReadonlySet<Mac> = new Set(this.arp.values())): Promise<number> {
    const dst = this.fdb.get(mac);
    if (dst === undefined || resolved.has(mac)) return 0;
    await deleteFdb(this.nl, this.dev, { mac, dst });
    this.fdb.delete(mac);
    return 1;
  }
}
