import { beforeAll, describe, expect, it } from 'vitest';
import { useTestbed } from '../helpers/fixtures.js';
import { icmpEcho, ipv4Packet, sendAsPeer } from '../helpers/packets.js';
import { DatapathAgent, startAgentHosts, type AgentHost } from './datapath-agent.js';

// Backend.Port overrides 8285 on both ends, and a lease that changes its PublicIP moves the route with it.
const NETWORK = '198.19.0.0/16';
const PORT = 18285;

const bed = useTestbed('dpp');
let a: AgentHost;
let b: AgentHost;
let peerNs: string;

beforeAll(async () => {
  [a, b] = await startAgentHosts(bed, NETWORK, [
    { name: 'a', n: 1, offload: false, port: PORT },
    { name: 'b', n: 2, offload: false, port: PORT },
  ]);
  peerNs = await bed.addHost('peer', '198.18.0.9');
  await a.agent.addPeer('198.19.9.0/24', '198.18.0.9');
});

const ping = async (from: AgentHost, to: AgentHost) => (await bed.ping(from.container.ns, to.container.ip, 2)).ok;

describe('udp datapath with Backend.Port', () => {
  it('listens on the configured port instead of 8285', async () => {
    const { stdout } = await bed.exec(a.ns, ['ss', '-Hnlu']);
    expect(stdout).toContain(`198.18.0.1:${PORT}`);
    expect(stdout).not.toContain(':8285');
  });

  it('carries container traffic both ways and answers a raw datagram sent to that port', async () => {
    expect(await ping(a, b)).toBe(true);
    expect(await ping(b, a)).toBe(true);
    const echo = ipv4Packet({ src: '198.19.9.5', dst: a.container.ip, payload: icmpEcho(0xbeef, 1, '') });
    const replies = await sendAsPeer(bed, peerNs, '198.18.0.9', a.ip, [echo], { port: PORT });
    expect(replies.map((r) => r.from)).toEqual([`198.18.0.1:${PORT}`]);
    expect(replies[0].packet[20]).toBe(0); // echo reply
  });

  it('follows a lease whose PublicIP changes', async () => {
    await a.agent.changePeer(b.lease, '198.18.0.77'); // nobody there
    expect(await ping(a, b)).toBe(false);
    await a.agent.changePeer(b.lease, b.ip);
    expect(await ping(a, b)).toBe(true);
  });

  it('refuses a Backend.Port that is not a port number, before creating anything', async () => {
    const bad = await DatapathAgent.start(bed, peerNs, { localIp: '198.18.0.9', lease: '198.19.9.0/24', network: NETWORK, port: 70000 });
    expect(bad.first.error).toMatch(/"Backend\.Port" must be a UDP port number/);
    expect(await bad.agent.exited).toBe(1);
    expect(await bed.ip(peerNs, 'link', 'show')).not.toContain('flannel0');
  });

  it('leaves no flannel0 and exits cleanly when the process exits without closing the datapath', async () => {
    const { agent, first } = await DatapathAgent.start(bed, peerNs, { localIp: '198.18.0.9', lease: '198.19.9.0/24', network: NETWORK, offload: true });
    expect(first, agent.stderr).toMatchObject({ ready: true });
    expect(await bed.ip(peerNs, 'link', 'show')).toContain('flannel0');
    expect(await agent.exitWithoutClose()).toBe(0);
    expect(await bed.ip(peerNs, 'link', 'show')).not.toContain('flannel0');
    expect(await bed.ip(peerNs, 'route', 'show')).not.toContain('198.19.0.0/16');
  });
});
