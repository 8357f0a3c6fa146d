// The registry of packet paths `npm run bench` compares. Each entry says what the path is, the MTU it runs at and
// how to build it on its own two hosts of the bench LAN; adding a path (a backend, a flag, another flanneld) is one
// entry here.
import type { OverlayCluster } from '../testbed/overlay.js';
import { waitFor } from '../testbed/netns.js';
import type { BenchLan, FlanneldHost, LanHost } from './lan.js';
import type { BinaryInfo } from './report.js';

/** flannel-ts's Prometheus port on its hosts, for the datapath counters printed with BENCH_VERBOSE. */
const METRICS_PORT = 9110;

/** A path built and ready: host `client` reaches host `server` at `target` over it. */
export interface ReadyPath {
  readonly client: string;
  readonly server: string;
  readonly target: string;
  readonly mtu: number;
  /** Extra lines for BENCH_VERBOSE after each sample (a flannel-ts path's datapath counters). */
  diagnostics?(): Promise<string>;
}

export interface BenchPath {
  readonly name: string;
  readonly label: string;
  /** The MTU the path runs at and why: every overlay at its own default, as users run it. */
  readonly mtuNote: string;
  /** The flanneld that carries the path, for flanneld-based paths. */
  readonly binary?: BinaryInfo;
  /** Builds the path on two new hosts of the LAN named after `tag`; throws, with the reason, where it cannot exist. */
  setup(lan: BenchLan, tag: string): Promise<ReadyPath>;
}

const bareLan: BenchPath = {
  name: 'bare-lan',
  label: 'bare LAN',
  mtuNote: '1500 (the veth underlay, no tunnel)',
  async setup(lan, tag) {
    const [a, b] = await lan.addPair(tag);
    return { client: a.ns, server: b.ns, target: b.underlayIp, mtu: 1500 };
  },
};

interface TunnelSpec {
  readonly name: string;
  readonly label: string;
  readonly mtuNote: string;
  readonly mtu: number;
  /** The tunnel's /24 inside 198.19.0.0/16; host 1's end is .1, host 2's end (the target) is .2. */
  readonly subnet: string;
  /** Makes one end of the tunnel on `host`, holding `addr`, towards `peer`. */
  makeEnd(lan: BenchLan, host: LanHost, peer: LanHost, addr: string, mtu: number): Promise<void>;
}

/** A point-to-point tunnel made by hand between the two hosts, without flanneld. */
function handMadeTunnel(spec: TunnelSpec): BenchPath {
  return {
    name: spec.name,
    label: spec.label,
    mtuNote: spec.mtuNote,
    async setup(lan, tag) {
      const [a, b] = await lan.addPair(tag);
      await spec.makeEnd(lan, a, b, `${spec.subnet}.1/24`, spec.mtu);
      await spec.makeEnd(lan, b, a, `${spec.subnet}.2/24`, spec.mtu);
      return { client: a.ns, server: b.ns, target: `${spec.subnet}.2`, mtu: spec.mtu };
    },
  };
}

/** Kernel VXLAN made by hand, as flannel's vxlan backend would make it: the reference any overlay is held to. */
const kernelVxlan = handMadeTunnel({
  name: 'kernel-vxlan',
  label: 'kernel VXLAN',
  mtuNote: '1450 (1500 − 50, as flannel vxlan sets it)',
  mtu: 1450,
  subnet: '198.19.200',
  async makeEnd(lan, host, peer, addr, mtu) {
    await lan.bed.ip(host.ns, 'link', 'add', 'vxbench', 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'local', host.underlayIp, 'remote', peer.underlayIp, 'dev', 'eth0');
    await lan.bed.ip(host.ns, 'link', 'set', 'vxbench', 'mtu', String(mtu), 'up');
    await lan.bed.ip(host.ns, 'addr', 'add', addr, 'dev', 'vxbench');
  },
});

/** socat between a TUN and a UDP socket: one read, one write, one sendto per packet, flannel udp's wire format. */
const naiveRelay = handMadeTunnel({
  name: 'naive-relay',
  label: 'socat relay',
  mtuNote: '1472 (1500 − 28, like flannel0)',
  mtu: 1472,
  subnet: '198.19.201',
  async makeEnd(lan, host, peer, addr, mtu) {
    lan.bed.spawn(host.ns, ['socat', `TUN:${addr},tun-type=tun,iff-no-pi,iff-up,tun-name=socbench`, `UDP-DATAGRAM:${peer.underlayIp}:9000,bind=${host.underlayIp}:9000`], { stdio: 'ignore' });
    await waitFor(`socat's TUN in ${host.ns}`, async () => (await lan.bed.ip(host.ns, 'link', 'show', 'socbench')).includes('UP'));
    await lan.bed.ip(host.ns, 'link', 'set', 'socbench', 'mtu', String(mtu));
  },
});

interface FlanneldPathSpec {
  readonly name: string;
  readonly label: string;
  readonly mtuNote: string;
  /** The path's own network, inside 198.19.0.0/16 and apart from every other path's. */
  readonly network: string;
  readonly backend: Record<string, unknown>;
  readonly binary: BinaryInfo;
  /** Another flanneld than ours (--flannel-bin): run as given, without our env variables. */
  readonly external?: boolean;
  readonly args?: string[];
  /** Throws, with the reason, when the running daemons do not carry the path the entry names. */
  verify?(lan: BenchLan, hosts: readonly FlanneldHost[]): Promise<void>;
}

/**
 * The udp fast path is a tc egress BPF program on flannel0 (issue 13). A flanneld that takes the flag without
 * attaching one would have the native engine measured under the eBPF label. On Linux 6.6+ it hangs on a tcx link,
 * which `tc filter show` does not list, so ask the programs' own counters: `flannel_fastpath_enabled` is 1 only
 * while they are attached.
 */
async function verifyFastPath(lan: BenchLan, hosts: readonly FlanneldHost[]): Promise<void> {
  for (const h of hosts) {
    const text = await lan.cluster.metrics(h.overlay, METRICS_PORT);
    if (!/^flannel_fastpath_enabled 1$/m.test(text)) throw new Error(`flanneld --udp-fastpath=on runs, but its fast path is not attached on ${h.name}`);
  }
}

/**
 * A path through flanneld: its own network config under its own etcd prefix, flanneld on both hosts, and the
 * target at host 2's lease on its docker-style bridge. A backend or flag this flanneld does not have makes it
 * exit with one line, which becomes the path's "unavailable" reason; the entry lights up once it exists.
 */
function flanneldPath(spec: FlanneldPathSpec): BenchPath {
  return {
    name: spec.name,
    label: spec.label,
    mtuNote: spec.mtuNote,
    binary: spec.binary,
    async setup(lan, tag) {
      const prefix = await lan.cluster.etcd.network(JSON.stringify({ Network: spec.network, Backend: spec.backend }));
      const env = spec.external ? {} : { FLANNELD_METRICS_PORT: String(METRICS_PORT) };
      const hosts = await lan.addFlanneldPair(tag, { prefix, binary: spec.external ? spec.binary.path : undefined, args: spec.args }, env);
      await spec.verify?.(lan, hosts);
      const [a, b] = hosts;
      return {
        client: a.ns,
        server: b.ns,
        target: b.subnet.FLANNEL_SUBNET.split('/')[0],
        mtu: Number(b.subnet.FLANNEL_MTU),
        diagnostics: spec.external ? undefined : () => datapathCounters(lan.cluster, hosts),
      };
    },
  };
}

async function datapathCounters(cluster: OverlayCluster, hosts: readonly FlanneldHost[]): Promise<string> {
  const out: string[] = [];
  for (const h of hosts) {
    const text = await cluster.metrics(h.overlay, METRICS_PORT);
    out.push(`${h.name}:`, ...text.split('\n').filter((l) => /^flannel_(datapath|fastpath)/.test(l) && !l.endsWith(' 0')));
  }
  return out.join('\n');
}

export interface RegistryOptions {
  /** Our flanneld, the built CLI. */
  readonly flannelTs: BinaryInfo;
  /** Another flanneld given with --flannel-bin, measured with the udp backend beside ours. */
  readonly flannelBin?: BinaryInfo;
}

/** Every path, in the order each round measures them. */
export function benchPaths(o: RegistryOptions): BenchPath[] {
  const udpMtu = '1472 (flannel0: 1500 − 28, flannel udp default)';
  return [
    bareLan,
    kernelVxlan,
    naiveRelay,
    // The native engine alone: the default (--udp-fastpath=auto) would run the eBPF path where the kernel allows.
    flanneldPath({ name: 'flannel-ts-udp', label: 'flannel-ts udp', mtuNote: udpMtu, network: '198.19.0.0/20', backend: { Type: 'udp' }, binary: o.flannelTs, args: ['--udp-fastpath=off'] }),
    flanneldPath({
      name: 'flannel-ts-udp-ebpf',
      label: 'flannel-ts udp (eBPF)',
      mtuNote: udpMtu,
      network: '198.19.16.0/20',
      backend: { Type: 'udp' },
      binary: o.flannelTs,
      args: ['--udp-fastpath=on'],
      verify: verifyFastPath,
    }),
    flanneldPath({ name: 'flannel-ts-vxlan', label: 'flannel-ts vxlan', mtuNote: '1450 (flannel.1: 1500 − 50)', network: '198.19.32.0/20', backend: { Type: 'vxlan' }, binary: o.flannelTs }),
    flanneldPath({ name: 'flannel-ts-host-gw', label: 'flannel-ts host-gw', mtuNote: '1500 (routes, no encapsulation)', network: '198.19.48.0/20', backend: { Type: 'host-gw' }, binary: o.flannelTs }),
    ...(o.flannelBin
      ? [flanneldPath({ name: 'flannel-bin-udp', label: `${o.flannelBin.product} ${o.flannelBin.version} udp`, mtuNote: udpMtu, network: '198.19.64.0/20', backend: { Type: 'udp' }, binary: o.flannelBin, external: true })]
      : []),
  ];
}
