import { goJsonFields, isJsonObject } from '../../config/go-json.js';
import { formatIpv4Net, parseIpv4, type Ipv4Net } from '../../ip/ipv4.js';
import { parseMac, type Mac } from '../../ip/mac.js';
import { deleteOwnRoutes } from '../../kernel/routes.js';
import { configureVxlanAddress, deleteVxlanLinks, ensureVxlanLink, type VxlanLinkSpec } from '../../kernel/vxlan-link.js';
import { log } from '../../log.js';
import type { Lease, LeaseAttrs } from '../../subnet/lease.js';
import type { Backend, BackendContext, BackendDefinition } from '../backend.js';
import { PeerNetwork, peersOfType, type PeerVerdict } from '../peer-network.js';
import { parseVxlanConfig, vxlanOverlayMtu, type VxlanConfig } from './vxlan-config.js';
import { vxlanPeerDriver, type VxlanPeer } from './vxlan-peers.js';

/** flannel's device names, `flannel.<VNI>`; teardown deletes every vxlan device named so. */
const DEVICE_NAME = /^flannel\.\d+$/;

function vxlanDeviceName(vni: number): string {
  return `flannel.${vni}`;
}

/**
 * flannel's vxlan backend: the kernel's VXLAN device `flannel.<VNI>` carries the traffic, and flanneld only keeps its
 * per-peer FDB, neighbour and route entries in line with the leases in etcd. Nothing runs per packet in this process,
 * and the kernel state outlives it: a restart adopts it without a lost packet.
 */
export const vxlanBackend: BackendDefinition<VxlanConfig> = {
  type: 'vxlan',
  parseConfig: parseVxlanConfig,
  create: (ctx) => new VxlanBackend(ctx),
  teardown: async (network?: Ipv4Net) => {
    if (!network) return; // no subnet file: flanneld has not run since boot, so no device or route of ours is left
    const devices = await deleteVxlanLinks(DEVICE_NAME);
    // DirectRouting's routes use the external interface, not the device, so they outlive it.
    const routes = await deleteOwnRoutes(network);
    log.info({ event: 'teardown', backend: 'vxlan', devices, routes }, `deleted ${devices.length} vxlan device(s) and ${routes} direct route(s)`);
  },
};

class VxlanBackend implements Backend {
  readonly type = 'vxlan';
  /** The MAC we advertise in our lease; a device we have to create again gets it back. */
  private vtepMac: Mac | undefined;

  constructor(private readonly ctx: BackendContext<VxlanConfig>) {}

  /**
   * Sets the device up before the lease exists (as flannel does), since the lease must carry its MAC; a device a
   * previous run left is reused with its MAC, so the value in etcd does not change across restarts.
   */
  async leaseAttrs(): Promise<Omit<LeaseAttrs, 'PublicIP'>> {
    const link = await this.ensureDevice();
    return { BackendType: 'vxlan', BackendData: { VNI: this.ctx.backendConfig.vni, VtepMAC: link.mac } };
  }

  async startNetwork(lease: Lease): Promise<PeerNetwork<VxlanPeer>> {
    const { config, backendConfig: cfg, extIface } = this.ctx;
    // Again: the device may have been deleted since leaseAttrs (or the network is being started over after a failure).
    const link = await this.ensureDevice();
    const name = vxlanDeviceName(cfg.vni);
    await configureVxlanAddress(name, link.index, lease.subnet.ip, config.network);
    const mtu = vxlanOverlayMtu(cfg, extIface.mtu);
    log.info({ event: 'network-running', device: name, vni: cfg.vni, port: cfg.port || 'kernel default', mtu, vtepMac: link.mac, directRouting: cfg.directRouting, subnet: formatIpv4Net(lease.subnet) }, 'vxlan network running');
    return new PeerNetwork<VxlanPeer>({
      mtu,
      what: 'vxlan peers',
      device: { name, index: link.index },
      translate: vxlanPeerOf,
      driver: vxlanPeerDriver({
        device: { name, index: link.index },
        extIfaceIndex: extIface.index,
        network: config.network,
        directRouting: cfg.directRouting,
      }),
    });
  }

  private async ensureDevice() {
    const { backendConfig: cfg, extIface } = this.ctx;
    const spec: VxlanLinkSpec = {
      name: vxlanDeviceName(cfg.vni),
      vni: cfg.vni,
      // flannel v0.20 binds the VTEP to the interface's own address; with --public-ip behind NAT that is the only
      // address the kernel can send from.
      local: extIface.address,
      dev: extIface.index,
      port: cfg.port,
      gbp: cfg.gbp,
      learning: cfg.learning,
      mtu: vxlanOverlayMtu(cfg, extIface.mtu),
      mac: this.vtepMac,
    };
    const link = await ensureVxlanLink(spec);
    if (link.outcome !== 'reused' || this.vtepMac === undefined) {
      log.info({ event: 'vxlan-device', device: spec.name, outcome: link.outcome, vtepMac: link.mac }, `${link.outcome} vxlan device ${spec.name}`);
    }
    this.vtepMac = link.mac;
    return link;
  }
}

/** What a peer lease asks of us: a vxlan lease with a usable VtepMAC; anything else is ignored (as flannel does). */
export const vxlanPeerOf = peersOfType('vxlan', (lease): PeerVerdict<VxlanPeer> => {
  const { BackendData, PublicIP } = lease.attrs;
  const data = isJsonObject(BackendData) ? BackendData : {};
  // flannel decodes BackendData with encoding/json: key names match case-insensitively.
  const vtepMac = parseMac(goJsonFields(data)('VtepMAC'));
  if (!vtepMac) return { ignore: `its BackendData has no valid VtepMAC (${JSON.stringify(BackendData ?? null)})` };
  return { want: { publicIp: parseIpv4(PublicIP), vtepMac } };
});
