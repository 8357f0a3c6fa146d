import { ConfigError } from '../../errors.js';
import { formatIpv4, formatIpv4Net, parseIpv4, type Ipv4, type Ipv4Net } from '../../ip/ipv4.js';
import { withNetlink } from '../../kernel/netlink.js';
import { RouteSnapshot, deleteOwnRoutes, isOwnPeerRoute } from '../../kernel/routes.js';
import { log } from '../../log.js';
import { subnetKey } from '../../subnet/subnet-key.js';
import type { Lease } from '../../subnet/lease.js';
import type { BackendContext, BackendDefinition } from '../backend.js';
import { PeerNetwork, peersOfType, type PeerVerdict } from '../peer-network.js';
import type { PeerDriver, PeerPass } from '../peer-sync.js';

/** What a peer's host-gw lease asks for: a route to its subnet via its PublicIP. */
interface HostGwPeer {
  readonly publicIp: Ipv4;
}

/**
 * flannel's host-gw backend: no encapsulation, each peer's subnet is routed via the peer's PublicIP on the external
 * interface, so every host must be on one L2 segment. The kernel forwards everything; the routes outlive flanneld.
 */
export const hostGwBackend: BackendDefinition<Record<string, never>> = {
  type: 'host-gw',
  // flannel's host-gw has no keys of its own.
  parseConfig: () => ({}),
  create: (ctx) => {
    const { extIface } = ctx;
    if (extIface.publicIp !== extIface.address) {
      throw new ConfigError(
        `host-gw cannot work behind NAT: --public-ip ${formatIpv4(extIface.publicIp)} differs from ${extIface.name}'s address ${formatIpv4(extIface.address)}, and peers route to the public IP directly`,
      );
    }
    return {
      type: 'host-gw',
      leaseAttrs: async () => ({ BackendType: 'host-gw' }),
      startNetwork: async (lease: Lease) => startHostGwNetwork(ctx, lease),
    };
  },
  teardown: async (network?: Ipv4Net) => {
    if (!network) return; // no subnet file: flanneld has not run since boot, and our routes are found by the Network
    const routes = await deleteOwnRoutes(network);
    log.info({ event: 'teardown', backend: 'host-gw', routes }, `deleted ${routes} host-gw route(s)`);
  },
};

function startHostGwNetwork(ctx: BackendContext, lease: Lease): PeerNetwork<HostGwPeer> {
  const { extIface, config } = ctx;
  log.info({ event: 'network-running', iface: extIface.name, mtu: extIface.mtu, subnet: formatIpv4Net(lease.subnet) }, 'host-gw network running');
  return new PeerNetwork<HostGwPeer>({
    mtu: extIface.mtu,
    what: 'host-gw routes',
    // Every route leaves through the external interface: without it there is no network.
    device: { name: extIface.name, index: extIface.index },
    translate: hostGwPeerOf,
    driver: hostGwDriver(extIface.name, extIface.index, config.network),
  });
}

export const hostGwPeerOf = peersOfType('host-gw', (lease): PeerVerdict<HostGwPeer> => ({ want: { publicIp: parseIpv4(lease.attrs.PublicIP) } }));

function hostGwDriver(ifaceName: string, ifaceIndex: number, network: Ipv4Net): PeerDriver<HostGwPeer> {
  /** Peers we reported as not directly connected, so each is logged once, not on every repair. */
  const unreachable = new Map<string, Ipv4>();
  return {
    pass: (fn) =>
      withNetlink('programming host-gw routes', async (nl) => {
        const routes = await RouteSnapshot.read(nl);
        const dropRoute = async (subnet: Ipv4Net) => {
          const have = routes.get(subnet);
          return have && isOwnPeerRoute(have) ? routes.delete(have) : 0;
        };
        const pass: PeerPass<HostGwPeer> = {
          ensure: async (subnet, want) => {
            const key = subnetKey(subnet);
            if (!routes.directlyConnected(want.publicIp, ifaceIndex)) {
              if (unreachable.get(key) !== want.publicIp) {
                unreachable.set(key, want.publicIp);
                log.warn(
                  { event: 'peer-not-directly-connected', subnet: formatIpv4Net(subnet), publicIp: formatIpv4(want.publicIp), iface: ifaceName },
                  `skipping peer ${formatIpv4Net(subnet)}: its PublicIP ${formatIpv4(want.publicIp)} is not on a subnet directly connected to ${ifaceName} (host-gw needs every host on one L2 network)`,
                );
              }
              return dropRoute(subnet);
            }
            unreachable.delete(key);
            return routes.ensure({ dst: subnet, gateway: want.publicIp, oif: ifaceIndex, onlink: false });
          },
          remove: async (subnet) => {
            unreachable.delete(subnetKey(subnet));
            return dropRoute(subnet);
          },
          removeUnclaimed: (wanted) => routes.deleteUnclaimed(network, isOwnPeerRoute, (dst) => wanted.has(subnetKey(dst))),
        };
        return fn(pass);
      }),
  };
}
