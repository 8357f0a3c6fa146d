import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, waitFor } from '../../testbed/netns.js';
import { sendRandomFile } from '../../testbed/transfer.js';
import { useTempDir } from '../helpers/fixtures.js';
import { DatapathAgent, dropDelta, startAgentHosts, type AgentHost } from './datapath-agent.js';
import { flannelEchoReply, icmpEcho, ipv4Packet, malformedCopies, readEchoReply, sendAsPeer as sendAsPeerFrom } from '../helpers/packets.js';

// Three hosts on a LAN (198.18.0.1-3), each running the udp backend's network with a hand-fed peer table, and a
// container behind each host's bridge. A fourth namespace (198.18.0.9) plays a flannel peer with raw datagrams.
const NETWORK = '198.19.0.0/16';
const PEER = { ip: '198.18.0.9', subnet: '198.19.9.0/24' };

type Host = AgentHost;

let bed: Testbed;
const dir = useTempDir('dp');
const hosts: Host[] = [];
let peerNs: string;

beforeAll(async () => {
  bed = await Testbed.create('dp');
  // h3 runs with offloads on and anti-spoofing off: the wire format must not care, and the option must work.
  const specs = [
    { name: 'h1', n: 1, offload: false, antiSpoofing: true },
    { name: 'h2', n: 2, offload: false, antiSpoofing: true },
    { name: 'h3', n: 3, offload: true, antiSpoofing: false },
  ];
  hosts.push(...(await startAgentHosts(bed, NETWORK, specs)));
  peerNs = await bed.addHost('peer', PEER.ip);
  await hosts[0].agent.addPeer(PEER.subnet, PEER.ip); // flannel's udp writes no BackendType
});

afterAll(async () => {
  await bed?.cleanup();
});

const [h1, h2, h3] = [0, 1, 2].map((i) => () => hosts[i]);

const ping = (from: Host, toIp: string, count = 1) => bed.ping(from.container.ns, toIp, count);

// DF set, as a Linux sender would.
const ipv4 = (src: string, dst: string, payload: Buffer, ttl = 64, protocol = 1) =>
  ipv4Packet({ src, dst, payload, ttl, protocol, flagsFragment: 0x4000 });

/** Sends raw IPv4 packets as flannel udp datagrams from the peer namespace to `target`:8285; returns the replies. */
const sendAsPeer = (target: string, packets: Buffer[], waitMs = 1500) => sendAsPeerFrom(bed, peerNs, PEER.ip, target, packets, { waitMs });

describe('udp datapath in real network namespaces (no etcd: peers fed directly)', () => {
  it('gives flannel0 the lease address as /32, MTU = eth0 MTU - 28, and one route for the Network', async () => {
    for (const h of hosts) {
      const addr = await bed.ip(h.ns, '-o', 'addr', 'show', 'dev', 'flannel0');
      expect(addr).toContain(`inet ${h.lease.replace('/24', '/32')}`);
      const link = await bed.ip(h.ns, 'link', 'show', 'flannel0');
      expect(link).toContain('mtu 1472');
      expect(link).toMatch(/state (UP|UNKNOWN)/);
      expect(await bed.ip(h.ns, 'route', 'show', NETWORK)).toContain('dev flannel0');
      // IPv4 only: no IPv6 link-local address, so the kernel sends no solicitations into the TUN.
      expect(await bed.ip(h.ns, '-6', 'addr', 'show', 'dev', 'flannel0')).toBe('');
    }
  });

  it('carries pings between the containers of every pair of hosts', async () => {
    for (const a of hosts) {
      for (const b of hosts) {
        if (a === b) continue;
        const r = await waitFor(`${a.name} -> ${b.name}`, async () => (await ping(a, b.container.ip)).ok, 10_000);
        expect(r).toBe(true);
      }
    }
    const c = await h1().agent.counters();
    expect(c.txPackets).toBeGreaterThan(0);
    expect(c.rxPackets).toBeGreaterThan(0);
  });

  it('still finds the right peer among hundreds of routes, and forgets them when removed', async () => {
    // Peers 198.18.1.x do not exist: a wrong lookup would send the ping nowhere.
    for (let i = 10; i < 256; i++) await h1().agent.addPeer(`198.19.${i}.0/24`, `198.18.1.${i % 250}`);
    expect((await ping(h1(), h2().container.ip, 2)).ok).toBe(true);
    expect((await ping(h1(), h3().container.ip, 2)).ok).toBe(true);
    for (let i = 10; i < 256; i++) await h1().agent.removePeer(`198.19.${i}.0/24`, `198.18.1.${i % 250}`);
    const before = await h1().agent.counters();
    expect((await ping(h1(), '198.19.77.2')).ok).toBe(false);
    const after = await h1().agent.counters();
    expect(dropDelta(before, after).no_route).toBe(1);
  });

  it('moves a 50 MB TCP stream across the overlay intact', async () => {
    const src = dir.file('send.bin');
    const dst = dir.file('recv.bin');
    for (const [from, to] of [[h1(), h2()], [h1(), h3()]]) {
      const [a, b] = await sendRandomFile(bed, { fromNs: from.container.ns, toNs: to.container.ns, toIp: to.container.ip, port: 5001, bytes: 50 << 20, src, dst, timeoutMs: 90_000 });
      expect(b, `${from.name} -> ${to.name}`).toBe(a);
    }
  }, 180_000);

  it('answers a raw flannel datagram carrying an ICMP echo with an echo reply inside UDP to the peer', async () => {
    const echo = ipv4('198.19.9.5', h1().container.ip, icmpEcho(0x4242, 7, 'flannel-ts datapath'));
    const replies = await sendAsPeer(h1().ip, [echo]);
    expect(replies).toHaveLength(1);
    const { from, packet } = replies[0];
    expect(from).toBe(`${h1().ip}:8285`);
    // Exactly one IPv4 packet, nothing around it: flannel's wire format. Container sends TTL 64; h1's kernel
    // forwards (63) and the datapath decrements once more.
    expect(readEchoReply(packet)).toEqual(flannelEchoReply({ ttl: 62, src: h1().container.ip, dst: '198.19.9.5', id: 0x4242, seq: 7, data: 'flannel-ts datapath' }));
  });

  it('counts malformed, expired and spoofed datagrams as drops by reason and forwards none of them', async () => {
    const to = h1().container.ip;
    const good = ipv4('198.19.9.5', to, icmpEcho(1, 1, 'x'));
    const cases: [Buffer, string][] = [
      ...malformedCopies(good),
      [ipv4('198.19.9.5', to, icmpEcho(1, 2, 'x'), 1), 'ttl_exceeded'],
      // The peer owns 198.19.9.0/24 only: claiming h2's containers is spoofing, an address nobody leases is unknown.
      [ipv4(h2().container.ip, to, icmpEcho(1, 3, 'x')), 'spoofed_source'],
      [ipv4('198.19.200.5', to, icmpEcho(1, 4, 'x')), 'unknown_source'],
    ];
    for (const [packet, reason] of cases) {
      const before = await h1().agent.counters();
      const replies = await sendAsPeer(h1().ip, [packet], 400);
      const after = await h1().agent.counters();
      expect(replies, reason).toEqual([]);
      expect(dropDelta(before, after), reason).toEqual({ [reason]: 1 });
      expect(after.rxPackets, reason).toBe(before.rxPackets);
      expect(after.txPackets, reason).toBe(before.txPackets);
    }
  });

  it('with anti-spoofing off, forwards a datagram whatever host it claims to come from', async () => {
    const before = await h3().agent.counters();
    await sendAsPeer(h3().ip, [ipv4(h2().container.ip, h3().container.ip, icmpEcho(2, 1, 'y'))], 400);
    const after = await h3().agent.counters();
    expect(after.rxPackets).toBe(before.rxPackets + 1);
    expect(dropDelta(before, after)).toEqual({});
  });

  it('answers ICMP net unreachable once a peer route is removed, and forwards again once it is back', async () => {
    await h1().agent.removePeer(h2().lease, h2().ip);
    try {
      const before = await h1().agent.counters();
      const r = await ping(h1(), h2().container.ip);
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/Destination Net Unreachable/i);
      const after = await h1().agent.counters();
      expect(dropDelta(before, after)).toEqual({ no_route: 1 });
      expect(after.icmpUnreachableSent).toBe(before.icmpUnreachableSent + 1);
      expect(after.txPackets).toBe(before.txPackets);
    } finally {
      // h2 back as a peer, whatever happened: the tests after this one send to it.
      await h1().agent.addPeer(h2().lease, h2().ip);
    }
    expect((await ping(h1(), h2().container.ip, 2)).ok).toBe(true);
  });

  it('drops routes for leases of other backends (vxlan peers do not speak this wire format)', async () => {
    await h1().agent.addPeer(h2().lease, h2().ip, 'vxlan');
    try {
      expect((await ping(h1(), h2().container.ip)).ok).toBe(false);
    } finally {
      await h1().agent.addPeer(h2().lease, h2().ip, 'udp');
    }
    expect((await ping(h1(), h2().container.ip, 2)).ok).toBe(true);
  });

  it('reports startup failures with the syscall and errno', async () => {
    // Port 8285 on h1's address is taken by h1's own datapath.
    const taken = await DatapathAgent.start(bed, h1().ns, { localIp: h1().ip, lease: h1().lease, network: NETWORK });
    expect(taken.first.error).toMatch(/TUNSETIFF flannel0.*EBUSY|bind\(198\.18\.0\.1:8285\) failed: EADDRINUSE/);
    expect(await taken.agent.exited).toBe(1);
    // An address the host does not have.
    const absent = await DatapathAgent.start(bed, peerNs, { localIp: '198.18.0.99', lease: '198.19.99.0/24', network: NETWORK });
    expect(absent.first.error).toMatch(/bind\(198\.18\.0\.99:8285\) failed: EADDRNOTAVAIL/);
    expect(absent.first).toMatchObject({ code: 'EADDRNOTAVAIL', syscall: 'bind' });
    expect(await absent.agent.exited).toBe(1);
    // Nothing left behind by the failed start.
    expect(await bed.ip(peerNs, 'link', 'show')).not.toContain('flannel0');
    expect(await bed.ip(peerNs, 'route', 'show')).not.toContain('198.19.');
  });

  it('removes flannel0 and its route on close and on SIGTERM', async () => {
    expect(await h2().agent.close()).toEqual({ closed: true });
    expect(await h2().agent.exited).toBe(0);
    h3().agent.child.kill('SIGTERM');
    expect(await h3().agent.exited).toBe(0);
    for (const h of [h2(), h3()]) {
      expect(await bed.ip(h.ns, 'link', 'show')).not.toContain('flannel0');
      expect(await bed.ip(h.ns, 'route', 'show')).not.toContain('198.19.0.0/16');
    }
    // h1 still runs; h2 is gone, so pings from h1 now die silently at h2 instead of crossing.
    expect((await ping(h1(), h2().container.ip)).ok).toBe(false);
  });
});
