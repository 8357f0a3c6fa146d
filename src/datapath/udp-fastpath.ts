import { existsSync, readFileSync } from 'node:fs';
import { FastPathUnavailableError, errorMessage, systemErrorInfo } from '../errors.js';
import type { Ipv4, Ipv4Net } from '../ip/ipv4.js';
import type { PeerRoute } from './datapath.js';
import { builtArtifacts, loadNativeAddon, type NativeFastPath } from './native.js';
import { NativeHandle } from './native-handle.js';

/** How the fast path's programs hook in: tcx links (Linux 6.6+), clsact filters, or whichever the kernel has. */
export type FastPathAttach = 'auto' | 'tcx' | 'tc';

/** How to load the fast path. Both fields are testing aids, set from the environment only (parsed by the CLI). */
export interface FastPathLoadOptions {
  /** `FLANNELD_UDP_FASTPATH_OBJECT`: another BPF object than the one the install step built. */
  readonly objectPath?: string;
  /** `FLANNELD_UDP_FASTPATH_ATTACH`: `tc` forces the clsact filters that kernels before 6.6 get. */
  readonly attach: FastPathAttach;
}

export interface FastPathCounters {
  /** Datagrams (a super packet counts its segments) and inner IPv4 bytes carried in the kernel, per direction. */
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  /** TCP super packets sent or received whole, without being cut into datagrams on this host. */
  readonly txSuperPackets: number;
  readonly rxSuperPackets: number;
  /** Dropped in BPF, by the engine's reason names: `ttl_exceeded`, `spoofed_source`, `unknown_source`; and
   *  `encap_failed` (the kernel failed us half way through rewriting a packet). */
  readonly drops: Readonly<Record<string, number>>;
  /** Left to the engine (the slow path), by reason: `no_route` (it answers ICMP net unreachable), `plain_peer`
   *  (the peer does not run the fast path), `unusual` (IP options, fragments, odd lengths), `too_big`,
   *  `helper_failed`. */
  readonly passed: Readonly<Record<string, number>>;
}

export interface FastPathStart {
  /** The external interface: encapsulated datagrams leave and arrive here. */
  readonly extIfindex: number;
  /** flannel0, whose egress the fast path takes over; the engine must have created it. */
  readonly tunIfindex: number;
  /** Our address on the external interface (the engine's socket binds it). */
  readonly localIp: Ipv4;
  readonly port: number;
  readonly antiSpoofing: boolean;
}

/** Where the install step put the BPF object, or why it could not build one. */
export function fastPathObject(buildDir?: string): { path: string } | { unavailable: string } {
  for (const path of builtArtifacts('flannel_udp.bpf.o', buildDir)) {
    if (existsSync(path)) return { path };
    if (existsSync(`${path}.unavailable`)) return { unavailable: readFileSync(`${path}.unavailable`, 'utf8').trim() };
  }
  return { unavailable: `the BPF object was not built (no build/Release/flannel_udp.bpf.o); run: npm run build:native` };
}

/**
 * The udp backend's fast path (native/bpf/flannel_udp.bpf.c): tc programs on flannel0 egress and on the external
 * interface's ingress that carry flannel's wire format inside the kernel. The native engine keeps running beside
 * it and gets whatever the programs leave alone. Routes mirror the engine's (both are fed from the lease watch).
 */
export class UdpFastPath extends NativeHandle<NativeFastPath> {
  private constructor(native: NativeFastPath) {
    super(native, 'the udp fast path');
  }

  /** Loads the programs into the kernel, which verifies them; attaches nothing yet. Without `attach`: 'auto'. */
  static load(opts: Partial<FastPathLoadOptions> = {}): UdpFastPath {
    const object = opts.objectPath ? { path: opts.objectPath } : fastPathObject();
    if ('unavailable' in object) throw new FastPathUnavailableError(object.unavailable);
    const { FastPath } = loadNativeAddon();
    try {
      return new UdpFastPath(new FastPath({ objectPath: object.path, attach: opts.attach ?? 'auto' }));
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Removes programs that a crashed flanneld left attached as clsact filters (tcx links die with their process). */
  static removeLeftovers(ifindex: number): number {
    return ifindex > 0 ? loadNativeAddon().FastPath.removeLeftovers(ifindex) : 0;
  }

  /** Attaches both programs; on failure nothing stays attached. */
  start(opts: FastPathStart): void {
    try {
      this.live().start(opts);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** "tcx" or "tc". */
  get attachMode(): string {
    return this.live().attachMode;
  }

  setRoute(route: PeerRoute, peerRunsFastPath: boolean): void {
    this.live().setRoute(route.subnet.ip, route.subnet.prefixLen, route.publicIp, route.port, peerRunsFastPath);
  }

  deleteRoute(subnet: Ipv4Net): void {
    this.live().deleteRoute(subnet.ip, subnet.prefixLen);
  }

  counters(): FastPathCounters {
    return this.live().counters();
  }
}

/** The addon's refusal as our error, with its message, errno and call. */
function unavailable(err: unknown): FastPathUnavailableError {
  return new FastPathUnavailableError(errorMessage(err), { cause: err, ...systemErrorInfo(err) });
}
