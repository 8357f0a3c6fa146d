import { beforeAll, describe, expect, it } from 'vitest';
import { FAST_PATH_LEASE_DATA } from '../../src/backend/udp/fastpath-lease.js';
import { useTestbed } from '../helpers/fixtures.js';
import { icmpEcho, ipv4Packet, sendAsPeer } from '../helpers/packets.js';
import { settledMoves, startAgentHosts, type AgentHost, type Moved } from './datapath-agent.js';

// The udp backend's settings that reach the fast path's BPF config, as datapath-port.test.ts and datapath.test.ts
// check them for the engine: Backend.Port on both ends (a and b), and anti-spoofing off (a only). 198.18.0.9 plays
// a peer that speaks the same port and is told to take the fast path's datagrams, so the BPF programs both receive
// its requests and send the replies.
const NETWORK = '198.19.0.0/16';
const PORT = 18285;
const PEER = { ip: '198.18.0.9', subnet: '198.19.9.0/24' };

const bed = useTestbed('fpo');
let a: AgentHost;
let b: AgentHost;
let peerNs: string;

beforeAll(async () => {
  [a, b] = await startAgentHosts(bed, NETWORK, [
    { name: 'a', n: 1, offload: true, fastPath: true, port: PORT, antiSpoofing: false },
    { name: 'b', n: 2, offload: true, fastPath: true, port: PORT },
  ]);
  peerNs = await bed.addHost('peer', PEER.ip);
  for (const h of [a, b]) await h.agent.addPeer(PEER.subnet, PEER.ip, undefined, FAST_PATH_LEASE_DATA);
}, 60_000);

const echo = (src: string, to: AgentHost, seq: number) => ipv4Packet({ src, dst: to.container.ip, payload: icmpEcho(0xfa57, seq, 'port'), protocol: 1 });
/** Runs `act`, then checks what moved on `h` meanwhile (once the counters settle) and what `act` returned. */
async function movedBy<T>(h: AgentHost, act: () => Promise<T>, check: (m: Moved, result: T) => void): Promise<void> {
  const before = await h.agent.allCounters();
  const result = await act();
  await settledMoves(h, before, (m) => check(m, result));
}

describe('udp fast path with Backend.Port and anti-spoofing off', () => {
  it('carries container traffic both ways in BPF, on the configured port', async () => {
    for (const [from, to] of [[a, b], [b, a]]) {
      await movedBy(to, () => bed.ping(from.container.ns, to.container.ip, 2), (m, r) => {
        expect(r.ok, r.output).toBe(true);
        expect(m.rx, `${from.name} -> ${to.name}`).toBeGreaterThanOrEqual(2);
        expect(m.tx, `${from.name} -> ${to.name}`).toBeGreaterThanOrEqual(2);
        expect([m.engineRx, m.engineTx, m.drops, m.engineDrops]).toEqual([0, 0, {}, {}]);
      });
    }
  });

  it('takes a datagram to Backend.Port in BPF and answers from and to that port; one to 8285 is not ours', async () => {
    await movedBy(a, () => sendAsPeer(bed, peerNs, PEER.ip, a.ip, [echo('198.19.9.5', a, 1)], { port: PORT }), (m, replies) => {
      expect(replies.map((r) => r.from)).toEqual([`${a.ip}:${PORT}`]);
      expect(replies[0].packet[20]).toBe(0); // echo reply
      expect([m.rx, m.tx, m.engineRx, m.engineTx]).toEqual([1, 1, 0, 0]);
    });
    // Nothing listens on 8285 here: neither program nor engine may take it (the kernel answers port unreachable).
    await movedBy(a, () => sendAsPeer(bed, peerNs, PEER.ip, a.ip, [echo('198.19.9.5', a, 2)], { port: 8285, waitMs: 400 }), (m, replies) => {
      expect(replies).toEqual([]);
      expect([m.rx, m.tx, m.engineRx, m.engineTx, m.passed, m.drops]).toEqual([0, 0, 0, 0, {}, {}]);
    });
  });

  it('with anti-spoofing off, delivers in BPF whatever source a datagram claims; with it on, drops it by reason', async () => {
    // The peer owns 198.19.9.0/24 only: b's container address is spoofed, 198.19.200.5 is nobody's. On a the echo
    // is delivered, and its container's reply to 198.19.200.5 finds no lease: the engine's no_route, as without BPF.
    const cases = [
      { host: a, src: b.container.ip, drops: {}, engineDrops: {} },
      { host: a, src: '198.19.200.5', drops: {}, engineDrops: { no_route: 1 } },
      { host: b, src: a.container.ip, drops: { spoofed_source: 1 }, engineDrops: {} },
      { host: b, src: '198.19.200.5', drops: { unknown_source: 1 }, engineDrops: {} },
    ];
    for (const [i, { host, src, drops, engineDrops }] of cases.entries()) {
      await movedBy(host, () => sendAsPeer(bed, peerNs, PEER.ip, host.ip, [echo(src, host, 10 + i)], { port: PORT, waitMs: 400 }), (m) => {
        const what = `${src} -> ${host.name}`;
        expect([m.drops, m.engineDrops, m.engineRx], what).toEqual([drops, engineDrops, 0]);
        expect(m.rx, what).toBe(Object.keys(drops).length ? 0 : 1);
      });
    }
  });
});
