import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../package-info.js';

/** The shape of `build/Release/flannel_datapath.node` (native/addon.cc). IPs are uint32 in host order. */
export interface NativeDatapathOptions {
  tunName: string;
  localIp: number;
  port: number;
  tunIp: number;
  mtu: number;
  antiSpoofing: boolean;
  /** TSO/GRO (virtio_net_hdr on the TUN, UDP_SEGMENT/UDP_GRO on the socket); falls back per feature. */
  offload: boolean;
  /** TUN queues (IFF_MULTI_QUEUE) with one SO_REUSEPORT socket each, 1..16. */
  queues: number;
}

export interface NativeCounters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  icmpUnreachableSent: number;
  gsoSplits: number;
  groMerges: number;
  drops: Record<string, number>;
  queues: { txPackets: number; rxPackets: number }[];
}

export interface NativeDatapath {
  readonly tunName: string;
  /** What the kernel granted of what was asked. */
  readonly offloads: { tun: boolean; udpGro: boolean };
  setRoute(subnetIp: number, prefixLen: number, peerIp: number, peerPort: number): void;
  deleteRoute(subnetIp: number, prefixLen: number): void;
  setTunIp(ip: number): void;
  counters(): NativeCounters;
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

export interface NativeAddon {
  readonly abiVersion: number;
  readonly Datapath: new (options: NativeDatapathOptions) => NativeDatapath;
  /** Blocks for about iterations × 0.7 ms (default 1000); for the benchmark, never the packet path. */
  probePlatform(options?: { iterations?: number }): PlatformCosts;
  readonly _test: {
    parse(packet: Buffer): { drop?: string; src?: number; dst?: number; headerLength?: number; totalLength?: number; ttl?: number; protocol?: number };
    decrementTtl(packet: Buffer): Buffer | null;
    buildNetUnreachable(packet: Buffer, srcIp: number): Buffer | null;
    splitTcp(vnetHdr: Buffer, packet: Buffer, mtu: number): Buffer[] | null;
    coalesce(packets: Buffer[]): Buffer[];
  };
}

let cached: NativeAddon | undefined;

/** Loads the addon from build/Release (or build/Debug) under the package root; one error lists where it looked. */
export function loadNativeAddon(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = ['Release', 'Debug'].map((kind) => join(root, 'build', kind, 'flannel_datapath.node'));
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`native datapath addon not built (looked in ${candidates.join(', ')}); run: npm run build:native`);
  }
  cached = createRequire(import.meta.url)(found) as NativeAddon;
  return cached;
}
