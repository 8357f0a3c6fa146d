import { ConfigError } from '../../errors.js';
import type { BackendOptions } from '../backend.js';
import { BackendOptionReader, UDP_PORT_RANGE } from '../backend-options.js';

/** VXLAN header, UDP, outer IPv4 and the inner Ethernet header around each packet. */
const VXLAN_OVERHEAD = 50;
/** The smallest MTU IPv4 allows, so the overlay's must be at least this. */
const MIN_OVERLAY_MTU = 68;

/** flannel's vxlan keys (pkg/backend/vxlan/vxlan.go). */
export interface VxlanConfig {
  /** VXLAN network identifier; the device is `flannel.<VNI>`. */
  readonly vni: number;
  /** Destination UDP port; 0 leaves the kernel default, 8472. */
  readonly port: number;
  /** VXLAN Group Based Policy extension. */
  readonly gbp: boolean;
  /** MAC learning on the device (flannel programs the FDB itself, so off by default). */
  readonly learning: boolean;
  /** Route peers on our own L2 subnet directly, like host-gw, instead of encapsulating. */
  readonly directRouting: boolean;
  /**
   * flannel's `MTU`: the size of the packets sent on the wire, the external interface's MTU when unset. The overlay
   * (the device and FLANNEL_MTU) gets 50 bytes less, as in flannel.
   */
  readonly mtu?: number;
}

export function parseVxlanConfig(options: BackendOptions): VxlanConfig {
  const o = new BackendOptionReader(options);
  const mtu = o.integer('MTU', 0, { min: 0, max: 65535, what: 'the MTU of the encapsulated packets, 0 for the interface\'s' });
  if (mtu !== 0 && mtu - VXLAN_OVERHEAD < MIN_OVERLAY_MTU) {
    throw new ConfigError(`"Backend.MTU" ${mtu} leaves no room for the overlay: it must be at least ${MIN_OVERLAY_MTU + VXLAN_OVERHEAD} (the VXLAN encapsulation takes ${VXLAN_OVERHEAD} bytes)`);
  }
  return {
    vni: o.integer('VNI', 1, { min: 0, max: 0xffffff, what: 'a VXLAN network identifier' }),
    port: o.integer('Port', 0, UDP_PORT_RANGE),
    gbp: o.boolean('GBP'),
    learning: o.boolean('Learning'),
    directRouting: o.boolean('DirectRouting'),
    ...(mtu ? { mtu } : {}),
  };
}

/** The overlay MTU: the wire MTU (Backend.MTU, else the external interface's) less the encapsulation. */
export function vxlanOverlayMtu(config: VxlanConfig, ifaceMtu: number): number {
  return (config.mtu ?? ifaceMtu) - VXLAN_OVERHEAD;
}
