import { DatapathFailedError, KernelError, errorMessage, systemErrorInfo } from '../errors.js';
import { formatIpv4, type Ipv4, type Ipv4Net } from '../ip/ipv4.js';
import type { Datapath, DatapathCounters, PeerRoute } from './datapath.js';
import { loadNativeAddon, type NativeDatapath } from './native.js';
import { NativeHandle } from './native-handle.js';

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
  /** TUN queues, each paired with a UDP socket and served by its own threads (1..MAX_QUEUES of native.ts). */
  readonly queues: number;
}

/** The udp backend's packet engine: flannel's wire format, run on native threads. */
export class UdpDatapath extends NativeHandle<NativeDatapath> implements Datapath {
  private failed: DatapathFailedError | undefined;
  readonly tunName: string;
  readonly offloads: { tun: boolean; udpGro: boolean };
  readonly queues: number;

  constructor(opts: UdpDatapathOptions) {
    const native = startEngine(opts);
    super(native, `datapath on ${native.tunName}`);
    this.tunName = native.tunName;
    this.offloads = native.offloads;
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

  /** undefined while the packet threads run; after close(), what it was before. */
  failure(): DatapathFailedError | undefined {
    if (this.failed || !this.native) return this.failed;
    const f = this.native.failure();
    if (f) this.failed = new DatapathFailedError(`udp datapath on ${this.tunName} stopped: ${f.message}`, f);
    return this.failed;
  }

  /** Stops the threads and closes the TUN and socket, keeping failure() as it was. Idempotent. */
  override close(): void {
    this.failure();
    super.close();
  }
}

function startEngine(opts: UdpDatapathOptions): NativeDatapath {
  const { Datapath: NativeCtor } = loadNativeAddon();
  const { tunName, localIp, port, tunIp, mtu, antiSpoofing, offload, queues } = opts;
  try {
    return new NativeCtor({ tunName, localIp, port, tunIp, mtu, antiSpoofing, offload, queues });
  } catch (err) {
    // e.g. "... (TUN flannel0, UDP 198.18.0.1:8285): bind(198.18.0.1:8285) failed: EADDRINUSE (Address in use)"
    throw new KernelError(`cannot start the udp datapath (TUN ${tunName}, UDP ${formatIpv4(localIp)}:${port}): ${errorMessage(err)}`, {
      cause: err,
      ...systemErrorInfo(err),
    });
  }
}
