import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatapathCounters } from '../../src/datapath/datapath.js';
import { Testbed, waitFor } from '../../testbed/netns.js';
import { prng } from '../../testbed/packets.js';
import { cpuSeconds } from '../../testbed/proc.js';
import { icmpEcho, ipv4Packet, sendAsPeer } from '../helpers/packets.js';
import { DatapathAgent, dropDelta, startAgentHosts, type AgentHost } from './datapath-agent.js';

// Faults of the native datapath, with the real kernel: garbage from a peer, a second datapath on a taken port, and
// flannel0 deleted under traffic. h1 runs two queues, h2 one queue with offloads (UDP GRO merges what it can);
// a namespace at 198.18.0.9 plays a flannel peer owning 198.19.9.0/24.
const NETWORK = '198.19.0.0/16';
const PEER = { ip: '198.18.0.9', subnet: '198.19.9.0/24' };

let bed: Testbed;
const hosts: AgentHost[] = [];
const [h1, h2] = [0, 1].map((i) => () => hosts[i]);
let peerNs: string;

beforeAll(async () => {
  bed = await Testbed.create('dpf');
  hosts.push(
    ...(await startAgentHosts(bed, NETWORK, [
      { name: 'h1', n: 1, offload: true, queues: 2 },
      { name: 'h2', n: 2, offload: true, queues: 1 },
    ])),
  );
  peerNs = await bed.addHost('peer', PEER.ip);
  await h2().agent.addPeer(PEER.subnet, PEER.ip);
}, 60_000);

afterAll(async () => {
  await bed?.cleanup();
});

/** `count` datagrams of assorted garbage, about a tenth of them empty, with some well-formed ones among them. */
function garbage(count: number, to: string): Buffer[] {
  const rand = prng(11);
  const int = (n: number) => Math.floor(rand() * n);
  const good = (src: string, ttl = 64) => ipv4Packet({ src, dst: to, ttl, payload: icmpEcho(7, int(65536), 'x'), flagsFragment: 0x4000 });
  const kinds: (() => Buffer)[] = [
    () => Buffer.alloc(0),
    () => Buffer.from(Array.from({ length: 1 + int(200) }, () => int(256))),
    () => good('198.19.9.5').subarray(0, 1 + int(27)), // truncated
    () => Object.assign(good('198.19.9.5'), { 0: 0x65 }), // not IPv4
    () => Object.assign(good('198.19.9.5'), { 0: 0x43 }), // IHL below 5
    () => good('198.19.9.5', 1), // TTL expires here
    () => good('198.19.1.2'), // spoofed: h1's lease
    () => good('198.19.200.1'), // nobody's lease
    () => good('198.19.9.5'), // forwarded
  ];
  return Array.from({ length: count }, (_, i) => (i % 10 === 0 ? Buffer.alloc(0) : kinds[int(kinds.length)]()));
}

const total = (c: DatapathCounters) => c.rxPackets + Object.values(c.drops).reduce((a, b) => a + b, 0);

const ping = async (fromNs: string, to: string) => (await bed.ping(fromNs, to, 2)).ok;

describe('udp datapath faults', () => {
  it('reports no failure while it runs', async () => {
    expect(await h1().agent.failure()).toBeNull();
    expect(await h2().agent.failure()).toBeNull();
  });

  it('counts every datagram a peer sends, empty ones included, as received or as exactly one drop', async () => {
    const N = 400;
    const before = await h2().agent.counters();
    await sendAsPeer(bed, peerNs, PEER.ip, h2().ip, garbage(N, h2().container.ip), { waitMs: 300 });
    const after = await waitFor('every datagram counted', async () => {
      const c = await h2().agent.counters();
      return total(c) - total(before) >= N && c;
    }, 10_000);
    expect(total(after) - total(before)).toBe(N);
    expect(after.drops.empty - before.drops.empty).toBeGreaterThanOrEqual(N / 10);
    expect(after.rxPackets).toBeGreaterThan(before.rxPackets);
    expect(await h2().agent.failure()).toBeNull();
  });

  it('counts a send the kernel refuses (no route to the peer) as send_error, and keeps running', async () => {
    // 198.18.1.0/24 is not on h2's LAN and h2 has no default route: sendmmsg fails with ENETUNREACH.
    await h2().agent.addPeer('198.19.50.0/24', '198.18.1.50');
    try {
      const before = await h2().agent.counters();
      expect(await ping(h2().container.ns, '198.19.50.2')).toBe(false);
      const after = await h2().agent.counters();
      expect(dropDelta(before, after)).toEqual({ send_error: 2 });
      expect(await h2().agent.failure()).toBeNull();
      expect(await ping(h2().container.ns, h1().container.ip)).toBe(true);
    } finally {
      await h2().agent.removePeer('198.19.50.0/24', '198.18.1.50');
    }
  });

  it('refuses a second datapath on the same address and port with EADDRINUSE, without falling back to one queue', async () => {
    const second = await DatapathAgent.start(bed, h1().ns, { localIp: h1().ip, lease: h1().lease, network: NETWORK, offload: true, queues: 2 });
    expect(second.first).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
    expect(second.first.error).toMatch(/^cannot start the udp datapath \(TUN flannel0, UDP 198\.18\.0\.1:8285\): bind\(198\.18\.0\.1:8285\) failed: EADDRINUSE \(Address already in use\)$/);
    expect(await second.agent.exited).toBe(1);
    expect(second.agent.stderr).not.toContain('falling back');
    // The first datapath still has both its queues and carries traffic.
    expect((await h1().agent.counters()).queues).toHaveLength(2);
    expect(await ping(h2().container.ns, h1().container.ip)).toBe(true);
  });

  it('stops and reports EBADFD, without spinning, when flannel0 is deleted under traffic', async () => {
    // 100 pings a second from h2's container into h1 for up to 8 s: h1's threads are busy in both directions.
    const flood = bed.spawn(h2().container.ns, ['ping', '-n', '-q', '-i', '0.01', '-c', '800', '-W', '1', h1().container.ip]);
    try {
      const start = await h1().agent.counters();
      await waitFor('traffic through h1', async () => (await h1().agent.counters()).rxPackets > start.rxPackets + 20, 10_000);
      await bed.ip(h1().ns, 'link', 'del', 'flannel0');
      const failure = await waitFor('h1 to report its datapath failed', async () => (await h1().agent.failure()) ?? undefined, 5_000);
      expect(failure).toMatchObject({ code: 'EBADFD', errno: 77 });
      expect(['read', 'writev']).toContain(failure.syscall);
      expect([0, 1]).toContain(failure.queue);
      expect(failure.message).toMatch(/^udp datapath on flannel0 stopped: (read|writev)\(TUN flannel0, queue [01]\) failed: EBADFD \(File descriptor in bad state\)$/);

      // Before the fix this process burnt 2.6 CPU-seconds in these 3 s; stopped threads burn nothing. The bound is
      // generous because the machine is shared.
      const pid = h1().agent.child.pid!;
      const cpuBefore = await cpuSeconds(pid);
      await new Promise((r) => setTimeout(r, 3000));
      const cpuUsed = (await cpuSeconds(pid)) - cpuBefore;
      expect(flood.exitCode, 'the traffic went on during the measurement').toBeNull();
      expect(cpuUsed).toBeLessThan(0.5);

      // Still answers: counters stay readable, the failure stays the same, and close() ends it cleanly.
      expect((await h1().agent.counters()).queues).toHaveLength(2);
      expect(await h1().agent.failure()).toEqual(failure);
      expect(await h1().agent.close()).toEqual({ closed: true });
      expect(await h1().agent.exited).toBe(0);
    } finally {
      flood.kill('SIGKILL');
    }
  }, 40_000);
});

