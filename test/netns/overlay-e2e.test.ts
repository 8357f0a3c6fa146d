import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datapathQueues } from '../../src/backend/udp/udp-backend.js';
import { parseIpv4 } from '../../src/ip/ipv4.js';
import { lastLine } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { leaseOf, OverlayCluster, type OverlayHost } from '../../testbed/overlay.js';
import { sendRandomFile } from '../../testbed/transfer.js';
import { useTempDir } from '../helpers/fixtures.js';
import { checksum, icmpEcho, ipv4Packet, malformedCopies, sendAsPeer as sendAsPeerFrom } from '../helpers/packets.js';

const METRICS_PORT = 9109;

const dir = useTempDir('overlay');
let cluster: OverlayCluster;
let h1: OverlayHost, h2: OverlayHost, h3: OverlayHost;

beforeAll(async () => {
  cluster = await OverlayCluster.create('ov', dir.path, '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}');
  const env = { FLANNELD_METRICS_PORT: String(METRICS_PORT) };
  // h1 and h2 run the default (--udp-fastpath=auto: the eBPF fast path, here where the kernel allows it); h3 runs
  // the native engine alone, as a host that has not been switched yet would.
  h1 = await cluster.addHost('h1', 1, env);
  h2 = await cluster.addHost('h2', 2, env);
  h3 = await cluster.addHost('h3', 3, { ...env, FLANNELD_UDP_FASTPATH: 'off' });
  for (const h of [h1, h2, h3]) await cluster.addContainer(h);
});

afterAll(async () => {
  await cluster?.cleanup();
});

const ipv4 = (src: string, dst: string, protocol: number, payload: Buffer) => ipv4Packet({ src, dst, protocol, payload });
const sendAsPeer = (ns: string, bindIp: string, target: string, packets: Buffer[], waitMs = 1500) =>
  sendAsPeerFrom(cluster.bed, ns, bindIp, target, packets, { waitMs });

/**
 * A peer as flannel's own udp backend would register it (only PublicIP in the lease value): namespace p9 at
 * 198.18.0.9 with lease 198.19.250.0/24, made by whichever test needs it first, once h1 has learnt it.
 */
const PEER = { ip: '198.18.0.9', subnet: '198.19.250.0/24', host: '198.19.250.5' };
let peerNs: Promise<string> | undefined;
function flannelPeer(): Promise<string> {
  peerNs ??= (async () => {
    const ns = await cluster.bed.addHost('p9', PEER.ip);
    await cluster.etcd.put(`${cluster.prefix}/subnets/${PEER.subnet.replace('/', '-')}`, `{"PublicIP":"${PEER.ip}","PublicIPv6":null}`);
    await h1.daemon.waitForEvent('peer-added', { subnet: PEER.subnet });
    return ns;
  })();
  return peerNs;
}

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}}` : `${name} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** How much a metric grew between two scrapes. */
const grew = (before: string, after: string, name: string, labels = '') => metric(after, name, labels) - metric(before, name, labels);

/** The host's lease value in etcd. */
async function leaseValue(host: OverlayHost): Promise<Record<string, unknown>> {
  return JSON.parse((await cluster.etcd.get(`${cluster.prefix}/subnets/${leaseOf(host).key}`))!) as Record<string, unknown>;
}

describe('udp overlay between three hosts (real flanneld, etcd, TUN, netns)', () => {
  it('containers on every pair of hosts reach each other', async () => {
    await cluster.expectAllReachable([h1, h2, h3]);
  });

  it('uses flannel\'s layout: flannel0 with the lease address, MTU 1472, one route for the Network', async () => {
    const link = await cluster.bed.ip(h1.ns, '-o', 'addr', 'show', 'dev', 'flannel0');
    const leaseIp = h1.bridgeCidr!.split('/')[0].replace(/\.1$/, '.0');
    expect(link).toContain(`inet ${leaseIp}/32`);
    expect(await cluster.bed.ip(h1.ns, 'link', 'show', 'flannel0')).toContain('mtu 1472');
    expect(await cluster.bed.ip(h1.ns, 'route', 'show', '198.19.0.0/16')).toContain('dev flannel0');
  });

  /** Sends `bytes` of random data from one container to another over TCP with socat; expects the sha256 to match. */
  async function transfer(bytes: number, port: number, from = h1, to = h2): Promise<void> {
    const src = dir.file(`payload-${port}.bin`);
    const dst = dir.file(`received-${port}.bin`);
    const [sent, received] = await sendRandomFile(cluster.bed, { fromNs: from.container!.ns, toNs: to.container!.ns, toIp: to.container!.ip, port, bytes, src, dst });
    expect(received).toBe(sent);
  }

  it('a 50 MB TCP transfer to a host without the fast path arrives intact, through the engines', async () => {
    await transfer(50 << 20, 5001, h1, h3);
    const m = await cluster.metrics(h1, METRICS_PORT);
    expect(metric(m, 'flannel_datapath_bytes_total', 'direction="tx"')).toBeGreaterThan(50_000_000);
    expect(metric(m, 'flannel_fastpath_passed_total', 'reason="plain_peer"')).toBeGreaterThan(0);
    // flanneld chose one queue per two CPUs, and between them the queues carried every packet sent (a few ACKs may
    // still be in flight between the two reads of the snapshot).
    const queues = datapathQueues(0, availableParallelism());
    const perQueue = Array.from({ length: queues + 1 }, (_, i) => metric(m, 'flannel_datapath_queue_packets_total', `queue="${i}",direction="tx"`));
    expect(perQueue[queues]).toBe(0);
    expect(Math.abs(perQueue.reduce((a, b) => a + b, 0) - metric(m, 'flannel_datapath_packets_total', 'direction="tx"'))).toBeLessThan(10);
  });

  it('a 200 MB transfer to a host without the fast path arrives intact with offloads on, used on both sides', async () => {
    const before = [await cluster.metrics(h1, METRICS_PORT), await cluster.metrics(h3, METRICS_PORT)];
    await transfer(200 << 20, 5002, h1, h3);
    const after = [await cluster.metrics(h1, METRICS_PORT), await cluster.metrics(h3, METRICS_PORT)];
    expect(grew(before[0], after[0], 'flannel_datapath_offload_total', 'kind="gso_split"')).toBeGreaterThan(0); // h1 split TCP super packets into flannel datagrams
    expect(grew(before[1], after[1], 'flannel_datapath_offload_total', 'kind="gro_merge"')).toBeGreaterThan(0); // h3 merged received datagrams before writing to its TUN
    expect(metric(after[1], 'flannel_datapath_drops_total', 'reason="bad_gso"')).toBe(0);
  });

  it('the fast path runs on the default hosts: their leases say so, and 200 MB between them never touch the engine', async () => {
    expect((await leaseValue(h1)).BackendData).toEqual({ FastPath: true });
    expect((await leaseValue(h3)).BackendData).toBeUndefined();
    const before = [await cluster.metrics(h1, METRICS_PORT), await cluster.metrics(h2, METRICS_PORT)];
    expect([metric(before[0], 'flannel_fastpath_enabled'), metric(before[1], 'flannel_fastpath_enabled')]).toEqual([1, 1]);
    expect(metric(await cluster.metrics(h3, METRICS_PORT), 'flannel_fastpath_enabled')).toBe(0);
    await transfer(200 << 20, 5003, h1, h2);
    const after = [await cluster.metrics(h1, METRICS_PORT), await cluster.metrics(h2, METRICS_PORT)];
    expect(grew(before[0], after[0], 'flannel_fastpath_bytes_total', 'direction="tx"')).toBeGreaterThan(200 << 20);
    expect(grew(before[0], after[0], 'flannel_fastpath_super_packets_total', 'direction="tx"')).toBeGreaterThan(0);
    expect(grew(before[1], after[1], 'flannel_fastpath_bytes_total', 'direction="rx"')).toBeGreaterThan(200 << 20);
    for (const i of [0, 1]) {
      expect(grew(before[i], after[i], 'flannel_datapath_packets_total', 'direction="tx"')).toBe(0);
      expect(grew(before[i], after[i], 'flannel_datapath_packets_total', 'direction="rx"')).toBe(0);
    }
  });

  it('answers a hand-built flannel datagram from a registered peer (flannel interop)', async () => {
    const echo = ipv4(PEER.host, h1.container!.ip, 1, icmpEcho(0x4242, 7, 'flannel-ts interop'));
    const replies = await sendAsPeer(await flannelPeer(), PEER.ip, h1.underlayIp, [echo]);
    expect(replies).toHaveLength(1);
    const reply = replies[0].packet;
    expect(replies[0].from).toBe(`${h1.underlayIp}:8285`);
    expect(reply.readUInt32BE(12)).toBe(parseIpv4(h1.container!.ip));
    expect(reply.readUInt32BE(16)).toBe(parseIpv4(PEER.host));
    expect([reply[9], reply[20], reply.readUInt16BE(24), reply.readUInt16BE(26)]).toEqual([1, 0, 0x4242, 7]);
    expect(reply.subarray(28).toString()).toBe('flannel-ts interop');
    expect(checksum(reply.subarray(0, 20))).toBe(0);
  });

  it('drops malformed and spoofed datagrams by reason, and keeps forwarding', async () => {
    const peerNs = await flannelPeer();
    const before = await cluster.metrics(h1, METRICS_PORT);
    // Two truncated, one not IPv4, one with a bad header length.
    const malformed = malformedCopies(ipv4(PEER.host, h1.container!.ip, 1, icmpEcho(1, 1, 'x'))).map(([packet]) => packet);
    // Inner source in h2's lease, sent from the peer: spoofed.
    const spoofed = ipv4(h2.container!.ip, h1.container!.ip, 1, icmpEcho(2, 2, 'spoof'));
    // Inner source in no lease at all.
    const unknown = ipv4('198.19.251.5', h1.container!.ip, 1, icmpEcho(3, 3, 'who'));
    const replies = await sendAsPeer(peerNs, PEER.ip, h1.underlayIp, [...malformed, spoofed, unknown], 800);
    expect(replies).toEqual([]);
    const after = await cluster.metrics(h1, METRICS_PORT);
    // The fast path drops what it checks itself (spoofed, unknown source) and leaves the malformed to the engine.
    const delta = (reason: string) =>
      grew(before, after, 'flannel_datapath_drops_total', `reason="${reason}"`) + grew(before, after, 'flannel_fastpath_drops_total', `reason="${reason}"`);
    expect(delta('truncated')).toBe(2);
    expect(delta('not_ipv4')).toBe(1);
    expect(delta('bad_header_length')).toBe(1);
    expect(delta('spoofed_source')).toBe(1);
    expect(delta('unknown_source')).toBe(1);
    expect(h1.daemon.running).toBe(true);
    await cluster.expectReachable(h2, h1);
  });

  it('--udp-fastpath=on where the fast path cannot run: one line, exit 1, no lease written', async () => {
    const ns = await cluster.bed.addHost('h5', '198.18.0.5');
    const daemon = cluster.startDaemon(ns, dir.file('h5.env'), { FLANNELD_UDP_FASTPATH: 'on', FLANNELD_UDP_FASTPATH_OBJECT: dir.file('missing.bpf.o') });
    const result = await daemon.wait(40_000);
    expect(result.code).toBe(1);
    const last = lastLine(result.stderr);
    expect(last).toMatch(/^flanneld: --udp-fastpath=on, but cannot open BPF object .*missing\.bpf\.o: /);
    expect(await cluster.etcd.dump(`${cluster.prefix}/subnets`)).not.toContain('198.18.0.5');
    expect(await cluster.bed.ip(ns, 'link', 'show')).not.toContain('flannel0');
  });

  it('--udp-fastpath=auto where the fast path cannot run: one warning saying why, and the engine carries everything', async () => {
    const h6 = await cluster.addHost('h6', 6, { FLANNELD_METRICS_PORT: String(METRICS_PORT), FLANNELD_UDP_FASTPATH_OBJECT: dir.file('missing.bpf.o') });
    await cluster.addContainer(h6);
    const warnings = h6.daemon.events('fastpath-unavailable');
    expect(warnings).toHaveLength(1);
    expect(warnings[0].reason).toMatch(/cannot open BPF object .*missing\.bpf\.o/);
    expect((await leaseValue(h6)).BackendData).toBeUndefined();
    await cluster.expectAllReachable([h1, h6]);
    const m = await cluster.metrics(h6, METRICS_PORT);
    expect(metric(m, 'flannel_fastpath_enabled')).toBe(0);
    expect(metric(m, 'flannel_datapath_packets_total', 'direction="rx"')).toBeGreaterThan(0);
  });

  it('a host that joins later is reachable without restarting the others', async () => {
    const h4 = await cluster.addHost('h4', 4);
    await cluster.addContainer(h4);
    await cluster.expectReachable(h1, h4);
    await cluster.expectReachable(h4, h2);
  });

  it('a host whose lease is deleted becomes unreachable: the others answer net unreachable', async () => {
    await h3.daemon.stop('SIGKILL');
    const key = h3.bridgeCidr!.replace('.1/24', '.0-24');
    await cluster.etcd.ctl(['del', `${cluster.prefix}/subnets/${key}`]);
    await waitFor('h1 to drop the route', async () => {
      const r = await cluster.ping(h1, h3);
      return !r.ok && /Net Unreachable/.test(r.output);
    });
  });

  it('SIGTERM removes flannel0 and its route, exits 0, and leaves the lease', async () => {
    const result = await h2.daemon.stop('SIGTERM');
    expect(result.code).toBe(0);
    await expect(cluster.bed.ip(h2.ns, 'link', 'show', 'flannel0')).rejects.toThrow(/does not exist/);
    expect(await cluster.bed.ip(h2.ns, 'route', 'show', '198.19.0.0/16')).toBe('');
    expect(await cluster.bed.pids(h2.ns)).toEqual([]);
    const key = h2.bridgeCidr!.replace('.1/24', '.0-24');
    expect(await cluster.etcd.get(`${cluster.prefix}/subnets/${key}`)).toContain('198.18.0.2');
  });
});
