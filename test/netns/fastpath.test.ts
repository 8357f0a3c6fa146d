import { beforeAll, describe, expect, it, vi } from 'vitest';
import { FAST_PATH_LEASE_DATA } from '../../src/backend/udp/fastpath-lease.js';
import { runFlanneld } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { useTempDir, useTestbed } from '../helpers/fixtures.js';
import { flannelEchoReply, icmpEcho, ipv4Packet, malformedCopies, readEchoReply, sendAsPeer as sendAsPeerFrom } from '../helpers/packets.js';
import { DatapathAgent, moved, pairAgents, runsFastPath, startAgentHost, startAgentHosts, transfer as transferBetween, settledMoves, type AgentHost, type CounterSnapshot, type Moved } from './datapath-agent.js';

// The udp backend's fast path (tc programs on flannel0 egress and eth0 ingress) beside the engine, driven like
// datapath.test.ts: agents in host namespaces, peers fed by hand. h1 and h2 run the fast path, h3 only the engine
// with offloads off (it reads the wire one datagram at a time, as flannel does), h7 only the engine with offloads on
// (it sends UDP GSO datagrams), and 198.18.0.9 plays a flannel peer with raw datagrams. Every behaviour of the engine must hold; what the fast path carries, the engine must not.
const NETWORK = '198.19.0.0/16';
const PEER = { ip: '198.18.0.9', subnet: '198.19.9.0/24' };

type Host = AgentHost;

const bed = useTestbed('fp');
const dir = useTempDir('fp');
const hosts: Host[] = [];
let peerNs: string;

beforeAll(async () => {
  const specs = [
    { name: 'h1', n: 1, offload: true, fastPath: true },
    { name: 'h2', n: 2, offload: true, fastPath: true },
    { name: 'h3', n: 3, offload: false },
    { name: 'h7', n: 7, offload: true },
  ];
  hosts.push(...(await startAgentHosts(bed, NETWORK, specs)));
  peerNs = await bed.addHost('peer', PEER.ip);
  await h1().agent.addPeer(PEER.subnet, PEER.ip); // flannel's udp writes no BackendType and no BackendData
}, 90_000);

const [h1, h2, h3, h7] = [0, 1, 2, 3].map((i) => () => hosts[i]);

const ping = (from: Host, toIp: string, count = 1, options: readonly string[] = []) => bed.ping(from.container.ns, toIp, count, options);

const ipv4 = (src: string, dst: string, payload: Buffer, ttl = 64) => ipv4Packet({ src, dst, payload, ttl, protocol: 1, flagsFragment: 0x4000 });
const sendAsPeer = (target: string, packets: Buffer[], waitMs = 1500) => sendAsPeerFrom(bed, peerNs, PEER.ip, target, packets, { waitMs });
const transfer = (from: Host, to: Host, bytes: number, port: number) => transferBetween(bed, from, to, bytes, port, dir.path);
const snapshot = (h: Host): Promise<CounterSnapshot> => h.agent.allCounters();

describe('udp fast path in real network namespaces (no etcd: peers fed directly)', () => {
  it('carries pings between fast-path hosts in the kernel, TTL decremented as the engine does; the engine sees none', async () => {
    const before = await Promise.all([snapshot(h1()), snapshot(h2())]);
    const r = await waitFor('h1 -> h2', async () => {
      const p = await ping(h1(), h2().container.ip, 3);
      return p.ok && p;
    }, 10_000);
    // 64 from the container, -1 for each host's forwarding and -1 on each side of the tunnel: the engine's count.
    expect(r.output).toMatch(/ttl=60/);
    const after = await Promise.all([snapshot(h1()), snapshot(h2())]);
    for (const [i, m] of [0, 1].map((i) => [i, moved(before[i], after[i])] as const)) {
      expect(m.tx, `h${i + 1}`).toBeGreaterThanOrEqual(3);
      expect(m.rx, `h${i + 1}`).toBeGreaterThanOrEqual(3);
      expect([m.engineTx, m.engineRx], `h${i + 1}`).toEqual([0, 0]);
    }
    // The same count through a host that runs only the engine.
    expect((await ping(h1(), h3().container.ip)).output).toMatch(/ttl=60/);
  });

  it('answers a raw flannel datagram in flannel wire format, through the fast path both ways', async () => {
    // Tell h1 the flannel peer takes offloaded packets, so h1's fast path (not its engine) sends the reply.
    await h1().agent.changePeer(PEER.subnet, PEER.ip, FAST_PATH_LEASE_DATA);
    try {
      const before = await snapshot(h1());
      const replies = await sendAsPeer(h1().ip, [ipv4('198.19.9.5', h1().container.ip, icmpEcho(0x4242, 7, 'flannel-ts fast path'))]);
      const m = moved(before, await snapshot(h1()));
      expect(replies).toHaveLength(1);
      const { from, packet } = replies[0];
      expect(from).toBe(`${h1().ip}:8285`);
      // Exactly one IPv4 packet, nothing around it; TTL 64, -1 forwarding on h1, -1 by the fast path's egress.
      expect(readEchoReply(packet)).toEqual(flannelEchoReply({ ttl: 62, src: h1().container.ip, dst: '198.19.9.5', id: 0x4242, seq: 7, data: 'flannel-ts fast path' }));
      expect([m.rx, m.tx, m.engineRx, m.engineTx]).toEqual([1, 1, 0, 0]);
    } finally {
      await h1().agent.changePeer(PEER.subnet, PEER.ip);
    }
  });

  it('drops expired and spoofed datagrams in BPF by reason, and leaves malformed ones to the engine, forwarding none', async () => {
    const to = h1().container.ip;
    const good = ipv4('198.19.9.5', to, icmpEcho(1, 1, 'x'));
    const cases: [Buffer, string, 'engine' | 'fastPath'][] = [
      ...malformedCopies(good).map(([packet, reason]) => [packet, reason, 'engine'] as [Buffer, string, 'engine']),
      [ipv4('198.19.9.5', to, icmpEcho(1, 2, 'x'), 1), 'ttl_exceeded', 'fastPath'],
      [ipv4(h2().container.ip, to, icmpEcho(1, 3, 'x')), 'spoofed_source', 'fastPath'],
      [ipv4('198.19.200.5', to, icmpEcho(1, 4, 'x')), 'unknown_source', 'fastPath'],
    ];
    for (const [packet, reason, where] of cases) {
      const before = await snapshot(h1());
      const replies = await sendAsPeer(h1().ip, [packet], 400);
      const m = moved(before, await snapshot(h1()));
      expect(replies, reason).toEqual([]);
      if (where === 'engine') {
        expect([m.engineDrops, m.drops, m.passed], reason).toEqual([{ [reason]: 1 }, {}, { unusual: 1 }]);
      } else {
        expect([m.engineDrops, m.drops, m.passed], reason).toEqual([{}, { [reason]: 1 }, {}]);
      }
      expect([m.rx, m.tx, m.engineRx, m.engineTx], reason).toEqual([0, 0, 0, 0]);
    }
  });

  it('leaves packets for a subnet no lease holds to the engine, which answers ICMP net unreachable', async () => {
    await h1().agent.removePeer(h2().lease, h2().ip);
    try {
      const before = await snapshot(h1());
      const r = await ping(h1(), h2().container.ip);
      const after = await snapshot(h1());
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/Destination Net Unreachable/i);
      const m = moved(before, after);
      expect([m.passed, m.engineDrops, m.tx, m.engineTx]).toEqual([{ no_route: 1 }, { no_route: 1 }, 0, 0]);
      expect(after.engine.icmpUnreachableSent).toBe(before.engine.icmpUnreachableSent + 1);
    } finally {
      // h2 back as a fast-path peer, whatever happened: the tests after this one send to it.
      await h1().agent.addPeer(h2().lease, h2().ip, 'udp', FAST_PATH_LEASE_DATA);
    }
    const back = await snapshot(h1());
    expect((await ping(h1(), h2().container.ip, 2)).ok).toBe(true);
    expect(moved(back, await snapshot(h1())).tx).toBeGreaterThanOrEqual(2);
  });

  it('leaves IP options and fragments to the engine where the programs say so, and they still arrive', async () => {
    // The same pings to a fast-path peer (h2) and to an engine-only one (h3): what h1 and h2 do is the same either way.
    // Record route (-R) gives every packet 40 bytes of options (IHL 15): both programs pass it to the engine, so one
    // echo costs each fast-path host one `unusual` on egress and one on ingress. A 3000-byte echo without DF leaves
    // the container as three fragments (1448 + 1448 + 112 bytes of payload in an MTU of 1472): egress passes each to
    // the engine, ingress carries them like any other packet of IHL 5 (their outer datagram is whole).
    const cases = [
      { label: 'record route', options: ['-R'], reply: /RR:\s+198\.19\.1\.2/, packets: 1, ingressInBpf: false },
      { label: 'fragments', options: ['-M', 'dont', '-s', '3000'], reply: /^3008 bytes from/m, packets: 3, ingressInBpf: true },
    ];
    for (const { label, options, reply, packets: n, ingressInBpf } of cases) {
      for (const to of [h2(), h3()]) {
        const what = `${label} to ${to.name}`;
        const before = await Promise.all([snapshot(h1()), snapshot(to)]);
        const r = await ping(h1(), to.container.ip, 1, options);
        expect(r.ok, `${what}: ${r.output}`).toBe(true);
        expect(r.output, what).toMatch(reply);
        // h1 sends the request from its engine and takes the reply by the ingress program's rule, whoever sent it.
        const rx = ingressInBpf ? n : 0;
        const fastHost = { engineTx: n, tx: 0, rx, engineRx: n - rx, drops: {}, engineDrops: {}, passed: { unusual: n + n - rx } };
        await settledMoves(h1(), before[0], (m) => expect(m, `${what}: h1`).toEqual({ ...fastHost, txSuper: 0, rxSuper: 0 }));
        await settledMoves(to, before[1], (m) =>
          expect(m, `${what}: ${to.name}`).toMatchObject(to === h2() ? fastHost : { engineTx: n, engineRx: n, engineDrops: {} }),
        );
      }
    }
  });

  it('drops packets whose TTL runs out at the tunnel silently in BPF, exactly where and as the engine does', async () => {
    // The container sends TTL t; h1 forwards (t - 1 at flannel0), the tunnel takes one on each side. The engine sends
    // no ICMP time exceeded for what expires in it (neither does flannel's udp proxy), so the fast path sends none:
    // t = 2 dies at h1's egress, t = 3 at the receiver's ingress, t = 4 reaches the receiver's flannel0 with TTL 1 and
    // its kernel answers time exceeded from its flannel0 address, t = 5 arrives. h2 (fast path) and h3 (engine only)
    // must look the same from the container.
    const expected = (t: number, to: Host) =>
      t <= 3 ? /0 received, 100% packet loss/ : t === 4 ? new RegExp(`From ${to.container.ip.replace(/\.2$/, '.0')} icmp_seq=1 Time to live exceeded`) : /1 received/;
    for (const t of [2, 3, 4, 5]) {
      for (const to of [h2(), h3()]) {
        const what = `ttl ${t} to ${to.name}`;
        const before = await Promise.all([snapshot(h1()), snapshot(to)]);
        const r = await ping(h1(), to.container.ip, 1, ['-t', String(t)]);
        expect(r.output, what).toMatch(expected(t, to));
        const fast = to === h2();
        const [sender, receiver] = [(check: (m: Moved) => void) => settledMoves(h1(), before[0], check), (check: (m: Moved) => void) => settledMoves(to, before[1], check)];
        if (t === 2) {
          await sender((m) => expect([m.drops, m.engineDrops, m.tx, m.engineTx], what).toEqual(fast ? [{ ttl_exceeded: 1 }, {}, 0, 0] : [{}, { ttl_exceeded: 1 }, 0, 0]));
          await receiver((m) => expect([m.rx, m.engineRx], what).toEqual([0, 0]));
        } else if (t === 3) {
          await sender((m) => expect([m.tx, m.engineTx], what).toEqual(fast ? [1, 0] : [0, 1]));
          await receiver((m) => expect([m.drops, m.engineDrops, m.rx, m.engineRx], what).toEqual(fast ? [{ ttl_exceeded: 1 }, {}, 0, 0] : [{}, { ttl_exceeded: 1 }, 0, 0]));
        } else {
          for (const check of [sender, receiver]) await check((m) => expect([m.drops, m.engineDrops], what).toEqual([{}, {}]));
        }
      }
    }
  });

  it('takes bulk data from an engine that sends UDP GSO datagrams: the super datagrams go to the engine, intact', async () => {
    // h7's engine sends its TCP segments in UDP_SEGMENT batches; on a veth they arrive as one GSO skb whose outer
    // lengths cover the whole batch, which the ingress program leaves (as `unusual`) to h1's engine and its UDP_GRO
    // socket. Single datagrams (the last of a burst) it carries itself. Nothing may be lost or dropped either way.
    const before = await Promise.all([snapshot(h1()), snapshot(h7())]);
    const [sent, received] = await transfer(h7(), h1(), 30 << 20, 5206);
    expect(received).toBe(sent);
    const m7 = await vi.waitFor(async () => {
      const [m1, m7] = [moved(before[0], await snapshot(h1())), moved(before[1], await snapshot(h7()))];
      // Every datagram h7 sent was taken by exactly one of the two (the engine counts a batch's datagrams one by one);
      // the ACKs back go through h1's engine, as h7 does not run the fast path.
      expect([m1.engineRx + m1.rx, m1.passed.plain_peer, m1.tx]).toEqual([m7.engineTx, m1.engineTx, 0]);
      expect(m1.passed.unusual).toBeGreaterThan(0);
      expect([m1.drops, m1.engineDrops, m7.engineDrops]).toEqual([{}, {}, {}]);
      return m7;
    }, { timeout: 3000, interval: 100 });
    expect(m7.engineTx).toBeGreaterThanOrEqual(Math.ceil((30 << 20) / 1420));
  }, 240_000);

  it('moves 200 MB between fast-path hosts intact, as TCP super packets, without the engine', async () => {
    const before = await Promise.all([snapshot(h1()), snapshot(h2())]);
    const [sent, received] = await transfer(h1(), h2(), 200 << 20, 5201);
    expect(received).toBe(sent);
    const after = await Promise.all([snapshot(h1()), snapshot(h2())]);
    const [m1, m2] = [moved(before[0], after[0]), moved(before[1], after[1])];
    expect(m1.txSuper).toBeGreaterThan(0);
    expect(m2.rxSuper).toBeGreaterThan(0);
    // 200 MB in datagrams of at most 1420 bytes of TCP payload each.
    expect(m1.tx).toBeGreaterThanOrEqual(Math.ceil((200 << 20) / 1420));
    for (const m of [m1, m2]) {
      expect([m.engineTx, m.engineRx, m.drops, m.engineDrops]).toEqual([0, 0, {}, {}]);
    }
  }, 240_000);

  it('delivers received super packets intact where they must be cut again (a container port without TSO)', async () => {
    // Decapsulation in 6.18 leaves the UDP-tunnel GSO bits on the inner super packet; the bridge port to h2's
    // container cannot take super packets, so the kernel segments each one there, and TCP checks every segment.
    const port = (await bed.ip(h2().ns, '-o', 'link', 'show', 'master', 'cbr0')).split(': ')[1].split('@')[0];
    const features = ['tso', 'gso', 'tx-udp_tnl-segmentation'];
    await bed.exec(h2().ns, ['ethtool', '-K', port, ...features.flatMap((f) => [f, 'off'])]);
    try {
      const before = await snapshot(h2());
      const [sent, received] = await transfer(h1(), h2(), 30 << 20, 5205);
      expect(received).toBe(sent);
      const m = moved(before, await snapshot(h2()));
      expect(m.rxSuper).toBeGreaterThan(0);
      expect([m.engineRx, m.drops]).toEqual([0, {}]);
    } finally {
      await bed.exec(h2().ns, ['ethtool', '-K', port, ...features.flatMap((f) => [f, 'on'])]);
    }
  }, 240_000);

  it('works both ways with a host that runs only the engine: datagrams to it come from our engine, its own we take in BPF', async () => {
    for (const [from, to, port] of [[h1(), h3(), 5202], [h3(), h1(), 5203]] as const) {
      const before = await Promise.all([snapshot(h1()), snapshot(h3())]);
      const [sent, received] = await transfer(from, to, 30 << 20, port);
      expect(received, `${from.name} -> ${to.name}`).toBe(sent);
      const after = await Promise.all([snapshot(h1()), snapshot(h3())]);
      const [m1, m3] = [moved(before[0], after[0]), moved(before[1], after[1])];
      // h3 cannot take super packets or unfinished checksums: nothing goes to it from h1's fast path.
      expect(m1.tx).toBe(0);
      expect(m1.passed.plain_peer).toBeGreaterThan(0);
      expect(m1.rx).toBeGreaterThan(0);
      expect([m1.drops, m1.engineDrops, m3.engineDrops]).toEqual([{}, {}, {}]);
    }
  }, 240_000);

  it('puts plain flannel datagrams on the wire where the NIC cannot carry super packets', async () => {
    // eth0 without UDP tunnel segmentation or checksum offload behaves like a NIC: the kernel cuts each super packet
    // into datagrams and finishes every checksum before it leaves. h3 reads them as flannel would, one a time, so
    // h1 may treat it as a fast-path peer here.
    const features = ['tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation', 'tx-checksum-ip-generic'];
    await bed.exec(h1().ns, ['ethtool', '-K', 'eth0', ...features.flatMap((f) => [f, 'off'])]);
    await h1().agent.changePeer(h3().lease, h3().ip, FAST_PATH_LEASE_DATA);
    const capture = bed.spawn(h3().ns, ['tcpdump', '-i', 'eth0', '-nn', '-l', '-c', '400', 'udp dst port 8285 and src host 198.18.0.1']);
    let dump = '';
    let status = '';
    capture.stdout!.on('data', (d: Buffer) => (dump += d.toString()));
    capture.stderr!.on('data', (d: Buffer) => (status += d.toString()));
    try {
      await waitFor('tcpdump listening', async () => status.includes('listening on'), 10_000);
      const before = await Promise.all([snapshot(h1()), snapshot(h3())]);
      const [sent, received] = await transfer(h1(), h3(), 30 << 20, 5204);
      expect(received).toBe(sent);
      const [m1, m3] = [moved(before[0], await snapshot(h1())), moved(before[1], await snapshot(h3()))];
      expect(m1.txSuper).toBeGreaterThan(0);
      expect(m3.engineDrops).toEqual({});
      // Every datagram h3's engine read was one IPv4 packet of at most 1472 bytes: 30 MB need this many at least.
      expect(m3.engineRx).toBeGreaterThanOrEqual(Math.ceil((30 << 20) / 1420));
      const lengths = [...dump.matchAll(/UDP, length (\d+)/g)].map((x) => Number(x[1]));
      expect(lengths.length).toBeGreaterThan(100);
      expect(Math.max(...lengths)).toBeLessThanOrEqual(1472);
    } finally {
      capture.kill('SIGKILL');
      await h1().agent.changePeer(h3().lease, h3().ip);
      await bed.exec(h1().ns, ['ethtool', '-K', 'eth0', ...features.flatMap((f) => [f, 'on'])]);
    }
  }, 240_000);

  it('reaches a late joiner once its lease arrives, and drops its datagrams as unknown_source once the lease is gone', async () => {
    const h4 = await startAgentHost(bed, NETWORK, { name: 'h4', n: 4, offload: true, fastPath: true });
    for (const h of [h1(), h2()]) await pairAgents(h, h4);
    const before = await snapshot(h4);
    expect((await waitFor('h1 -> h4', async () => (await ping(h1(), h4.container.ip, 2)).ok, 10_000))).toBe(true);
    expect((await ping(h2(), h4.container.ip, 2)).ok).toBe(true);
    const m = moved(before, await snapshot(h4));
    expect(m.rx).toBeGreaterThanOrEqual(4);
    expect(m.tx).toBeGreaterThanOrEqual(4);

    await h1().agent.removePeer(h4.lease, h4.ip);
    expect((await ping(h1(), h4.container.ip)).output).toMatch(/Destination Net Unreachable/i);
    const gone = await snapshot(h1());
    expect((await ping(h4, h1().container.ip)).ok).toBe(false);
    expect(moved(gone, await snapshot(h1())).drops).toEqual({ unknown_source: 1 });
  });
});

describe('fast path attachment: leftovers and removal', () => {
  const tcFilters = async (ns: string) =>
    (await bed.exec(ns, ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout.split('\n').filter((l) => l.includes('flannel_ingress'));
  const join = async (name: string, n: number, fastPath: 'tc' | 'tcx') => {
    const h = await startAgentHost(bed, NETWORK, { name, n, offload: true, fastPath });
    await pairAgents(h, h1());
    return h;
  };
  /** Starts the host's agent again after it died, as systemd would restart flanneld. */
  const restart = async (h: Host, fastPath: false | 'tc') => {
    const { agent, first } = await DatapathAgent.start(bed, h.ns, { localIp: h.ip, lease: h.lease, network: NETWORK, offload: true, fastPath });
    expect(first, agent.stderr).toMatchObject({ ready: true, mtu: 1472 });
    h.agent = agent;
    h.leaseData = first.leaseData;
    expect(runsFastPath(h)).toBe(Boolean(fastPath));
    await pairAgents(h, h1());
  };

  it('with clsact filters, a crash leaves them behind, the next start replaces them and SIGTERM removes them', async () => {
    const h5 = await join('h5', 5, 'tc');
    expect(await tcFilters(h5.ns)).toHaveLength(1);
    expect((await ping(h1(), h5.container.ip)).ok).toBe(true);

    h5.agent.child.kill('SIGKILL');
    await h5.agent.exited;
    expect(await tcFilters(h5.ns)).toHaveLength(1); // still attached, redirecting into a flannel0 that is gone

    await restart(h5, 'tc');
    expect(await tcFilters(h5.ns)).toHaveLength(1);
    const before = await snapshot(h5);
    expect((await ping(h1(), h5.container.ip, 2)).ok).toBe(true);
    expect(moved(before, await snapshot(h5)).rx).toBeGreaterThanOrEqual(2);

    h5.agent.child.kill('SIGTERM');
    expect(await h5.agent.exited).toBe(0);
    expect(await tcFilters(h5.ns)).toEqual([]);

    // Uninstalling after a crash: flanneld teardown finds our filters by handle, without a Network.
    await restart(h5, 'tc');
    h5.agent.child.kill('SIGKILL');
    await h5.agent.exited;
    expect(await tcFilters(h5.ns)).toHaveLength(1);
    const teardown = await runFlanneld(['teardown', '--subnet-file', dir.file('none.env')], { netns: h5.ns });
    expect(teardown.code, teardown.stderr).toBe(0);
    expect(await tcFilters(h5.ns)).toEqual([]);
  });

  it('with tcx links, a crash leaves nothing: an engine started after it receives every datagram', async () => {
    const h6 = await join('h6', 6, 'tcx');
    expect((await ping(h1(), h6.container.ip)).ok).toBe(true);
    expect(await tcFilters(h6.ns)).toEqual([]);

    h6.agent.child.kill('SIGKILL');
    await h6.agent.exited;
    // A program left on eth0 would take these datagrams and redirect them into the old, vanished flannel0.
    await restart(h6, false);
    const before = await snapshot(h6);
    expect((await ping(h1(), h6.container.ip, 2)).ok).toBe(true);
    expect(moved(before, await snapshot(h6)).engineRx).toBeGreaterThanOrEqual(2);
  });
});
