import { KernelError, errorMessage } from '../errors.js';
import { formatIpv4, type Ipv4, type Ipv4Net } from '../ip/ipv4.js';
import type { Datapath, DatapathCounters, PeerRoute } from './datapath.js';
import { loadNativeAddon, type NativeDatapath } from './native.js';

export interface UdpDatapathOptions {
  readonly tunName: string;
  /** Address the UDP socket binds to (the external interface's). */
  readonly localIp: Ipv4;
  readonly port: number;
  /** flannel0's address: the source of ICMP errors written back into the TUN. */
  readonly tunIp: Ipv4;
  readonly mtu: number;
  readonly antiSpoofing: boolean;
  readonly offload: boolean;
  /** TUN queues, each paired with a UDP socket and served by its own threads (1..16). */
  readonly queues: number;
}

/** The udp backend's packet engine: flannel's wire format, run on native threads. */
export class UdpDatapath implements Datapath {
  private native: NativeDatapath | undefined;
  readonly tunName: string;
  readonly offloads: { tun: boolean; udpGro: boolean };
  readonly queues: number;

  constructor(opts: UdpDatapathOptions) {
    const { Datapath: NativeCtor } = loadNativeAddon();
    try {
      this.native = new NativeCtor({ ...opts });
    } catch (err) {
      throw new KernelError(
        `cannot start the udp datapath (TUN ${opts.tunName}, UDP ${formatIpv4(opts.localIp)}:${opts.port}): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    this.tunName = this.native.tunName;
    this.offloads = this.native.offloads;
    this.queues = opts.queues;
  }

  setRoute(route: PeerRoute): void {
    this.live().setRoute(route.subnet.ip, route.subnet.prefixLen, route.publicIp, route.port);
  }

  deleteRoute(subnet: Ipv4Net): void {
    this.live().deleteRoute(subnet.ip, subnet.prefixLen);
  }

  counters(): DatapathCounters {
    return this.live().counters();
  }

  close(): void {
    this.native?.close();
    this.native = undefined;
  }

  private live(): NativeDatapath {
    if (!this.native) throw new KernelError(`datapath on ${this.tunName} is closed`);
    return this.native;
  }
}
