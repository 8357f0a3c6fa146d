import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { NativeAddonError } from '../errors.js';
import { packageRoot } from '../package-info.js';
import type { DatapathCounters, DatapathFailure } from './datapath.js';
import type { FastPathAttach, FastPathCounters } from './udp-fastpath.js';

/**
 * The most TUN queues the engine runs (native/engine.h `kMaxQueues`, which the addon's usage line prints;
 * test/unit/native-usage.test.ts checks that the two agree).
 */
export const MAX_QUEUES = 16;

/** The addon version this code speaks to (native/addon.cc `kAbiVersion`); bumped whenever that surface changes. */
export const NATIVE_ABI_VERSION = 2;

/**
 * The shape of `build/Release/flannel_datapath.node` (native/addon.cc). IPs are uint32 in host order. Every option
 * is required: the addon has no defaults of its own, so none can disagree with the flags.
 */
export interface NativeDatapathOptions {
  tunName: string;
  localIp: number;
  port: number;
  tunIp: number;
  mtu: number;
  antiSpoofing: boolean;
  /** TSO/GRO (virtio_net_hdr on the TUN, UDP_SEGMENT/UDP_GRO on the socket); falls back per feature. */
  offload: boolean;
  /** TUN queues (IFF_MULTI_QUEUE) with one SO_REUSEPORT socket each, 1..MAX_QUEUES. */
  queues: number;
}

export interface NativeDatapath {
  readonly tunName: string;
  /** What the kernel granted of what was asked. */
  readonly offloads: { tun: boolean; udpGro: boolean };
  setRoute(subnetIp: number, prefixLen: number, peerIp: number, peerPort: number): void;
  deleteRoute(subnetIp: number, prefixLen: number): void;
  counters(): DatapathCounters;
  /** undefined while every packet thread runs; else the first persistent error, after which all have stopped. */
  failure(): DatapathFailure | undefined;
  close(): void;
}

/** A thread wakeup measured by the platform probe: both threads asleep, then A wakes B and B wakes A back. */
export interface WakeupCost {
  readonly roundTripUs: number;
  /** Time the waking thread spends inside the write() that wakes the other. */
  readonly wakerUs: number;
}

/** What a syscall and a wakeup cost on this machine: the overheads a userspace tunnel pays and the kernel's do not. */
export interface PlatformCosts {
  readonly syscallUs: number;
  readonly wakeupSameCpu: WakeupCost;
  /** Absent on a single-CPU machine. */
  readonly wakeupCrossCpu?: WakeupCost;
}

/** A route as the forwarding decisions take it: `subnet`/`prefixLen` go to `peerIp`:`peerPort`. */
export interface NativeTestRoute {
  subnet: number;
  prefixLen: number;
  peerIp: number;
  peerPort: number;
}

/** What the engine does with a packet read from the TUN (native/forward.h DecideEgress). */
export type EgressDecision =
  | { drop: string; icmp?: Buffer }
  | { drop?: undefined; peerIp: number; peerPort: number; split: boolean; datagrams: Buffer[] };

/** What the engine does with a datagram from a peer (DecideIngress): drop it, or write `packet` into the TUN. */
export type IngressDecision = { drop: string } | { drop?: undefined; packet: Buffer };

/** The udp fast path (native/fastpath.h): loaded by the constructor, attached by start(). IPs are uint32. */
export interface NativeFastPath {
  /** "tcx" or "tc" once started, else "". */
  readonly attachMode: string;
  start(config: { extIfindex: number; tunIfindex: number; localIp: number; port: number; antiSpoofing: boolean }): void;
  setRoute(subnetIp: number, prefixLen: number, peerIp: number, peerPort: number, peerFastPath: boolean): void;
  deleteRoute(subnetIp: number, prefixLen: number): void;
  /** Summed over CPUs (native/bpf/flannel_udp.h). */
  counters(): FastPathCounters;
  close(): void;
}

export interface NativeFastPathClass {
  new (options: { objectPath: string; attach?: FastPathAttach }): NativeFastPath;
  /** Removes clsact filters a crashed flanneld left on the interface; returns how many. */
  removeLeftovers(ifindex: number): number;
}

export interface NativeAddon {
  readonly abiVersion: number;
  readonly Datapath: new (options: NativeDatapathOptions) => NativeDatapath;
  readonly FastPath: NativeFastPathClass;
  /** Blocks for about iterations × 0.7 ms (default 1000); for the benchmark, never the packet path. */
  probePlatform(options?: { iterations?: number }): PlatformCosts;
  readonly _test: {
    parse(packet: Buffer): { drop?: string; src?: number; dst?: number; headerLength?: number; totalLength?: number; ttl?: number; protocol?: number };
    decrementTtl(packet: Buffer): Buffer | null;
    buildNetUnreachable(packet: Buffer, srcIp: number): Buffer | null;
    splitTcp(vnetHdr: Buffer, packet: Buffer, mtu: number): Buffer[] | null;
    coalesce(packets: Buffer[]): Buffer[];
    egress(packet: Buffer, routes: NativeTestRoute[], opts: { tunIp: number; mtu: number; vnetHdr?: Buffer }): EgressDecision;
    ingress(datagram: Buffer, senderIp: number, routes: NativeTestRoute[], antiSpoofing: boolean): IngressDecision;
  };
}

/** Loaded addons by build directory: dlopen happens once per file, and the ABI check with it. */
const loaded = new Map<string | undefined, NativeAddon>();

/**
 * Loads the addon from build/Release (or build/Debug) under `buildDir` (the package's build directory unless a test
 * points elsewhere). One error lists where it looked when it is missing, and one says to rebuild when it was built
 * from other sources (an ABI version other than ours): no caller gets an addon that checkAbiVersion refused.
 */
export function loadNativeAddon(buildDir?: string): NativeAddon {
  const known = loaded.get(buildDir);
  if (known) return known;
  const candidates = builtArtifacts('flannel_datapath.node', buildDir);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new NativeAddonError(`native datapath addon not built (looked in ${candidates.join(', ')}); run: npm run build:native`);
  }
  const addon = checkAbiVersion(createRequire(import.meta.url)(found) as NativeAddon, found);
  loaded.set(buildDir, addon);
  return addon;
}

/**
 * The places node-gyp may have put the build product `name`, in the order to look: build/Release, then build/Debug
 * (`node-gyp --debug`), under `buildDir` (the package's build directory unless a test builds elsewhere).
 */
export function builtArtifacts(name: string, buildDir = join(packageRoot(), 'build')): string[] {
  return ['Release', 'Debug'].map((kind) => join(buildDir, kind, name));
}

/** Returns `addon` if it speaks NATIVE_ABI_VERSION; else throws one line saying to rebuild it. */
function checkAbiVersion<T extends { readonly abiVersion?: unknown }>(addon: T, file: string): T {
  if (addon.abiVersion === NATIVE_ABI_VERSION) return addon;
  throw new NativeAddonError(
    `native datapath addon ${file} has ABI version ${String(addon.abiVersion)}, this code needs ${NATIVE_ABI_VERSION}; rebuild with npm run build:native`,
  );
}
