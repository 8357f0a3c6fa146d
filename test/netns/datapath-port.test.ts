import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIpv4 } from '../../src/ip/ipv4.js';
import { Testbed } from '../../testbed/netns.js';
import { DatapathAgent } from './datapath-agent.js';

// Backend.Port overrides 8285 on both ends, and a lease that changes its PublicIP moves the route with it.
const NETWORK = '198.19.0.0/16';
const PORT = 18285;
const PEER_SCRIPT = join(import.meta.dirname, '..', 'fixtures', 'flannel-udp-peer.mjs');

let bed: Testbed;
let a: { ns: string; agent: DatapathAgent; cns: string };
let b: { ns: string; agent: DatapathAgent; cns: string };
let peerNs: string;

beforeAll(async () => {
  bed = await Testbed.create('dpp');
  const start = async (name: string, n: number) => {
    const ns = await bed.addHost(name, `198.18.0.${n}`);
    const cns = await bed.addContainer(ns, `${name}c`, `198.19.${n}.1/24`, `198.19.${n}.2`);
    const { agent, first } = await DatapathAgent.start(bed, ns, { localIp: `198.18.0.${n}`, lease: `198.19.${n}.0/24`, network: NETWORK, port: PORT });
    expect(first, agent.stderr).toMatchObject({ ready: true });
    return { ns, agent, cns };
  };
  a = await start('a', 1);
  b = await start('b', 2);
  await a.agent.addPeer('198.19.2.0/24', '198.18.0.2');
  await b.agent.addPeer('198.19.1.0/24', '198.18.0.1');
  peerNs = await bed.addHost('peer', '198.18.0.9');
  await a.agent.addPeer('198.19.9.0/24', '198.18.0.9');
});

afterAll(async () => {
  await bed?.cleanup();
});

async function ping(fromNs: string, to: string): Promise<boolean> {
  return bed.exec(fromNs, ['ping', '-n', '-c', '2', '-i', '0.2', '-W', '1', to]).then(() => true, () => false);
}

function checksum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

describe('udp datapath with Backend.Port', () => {
  it('listens on the configured port instead of 8285', async () => {
    const { stdout } = await bed.exec(a.ns, ['ss', '-Hnlu']);
    expect(stdout).toContain(`198.18.0.1:${PORT}`);
    expect(stdout).not.toContain(':8285');
  });

  it('carries container traffic both ways and answers a raw datagram sent to that port', async () => {
    expect(await ping(a.cns, '198.19.2.2')).toBe(true);
    expect(await ping(b.cns, '198.19.1.2')).toBe(true);
    const icmp = Buffer.from('08000000beef0001', 'hex');
    icmp.writeUInt16BE(checksum(icmp), 2);
    const ip = Buffer.alloc(28);
    ip[0] = 0x45;
    ip.writeUInt16BE(28, 2);
    ip[8] = 64;
    ip[9] = 1;
    ip.writeUInt32BE(parseIpv4('198.19.9.5'), 12);
    ip.writeUInt32BE(parseIpv4('198.19.1.2'), 16);
    ip.writeUInt16BE(checksum(ip.subarray(0, 20)), 10);
    icmp.copy(ip, 20);
    const { stdout } = await bed.exec(peerNs, [process.execPath, PEER_SCRIPT, '198.18.0.9', String(PORT), '198.18.0.1', '1500', ip.toString('hex')]);
    const replies = JSON.parse(stdout) as { from: string; hex: string }[];
    expect(replies.map((r) => r.from)).toEqual([`198.18.0.1:${PORT}`]);
    expect(Buffer.from(replies[0].hex, 'hex')[20]).toBe(0); // echo reply
  });

  it('follows a lease whose PublicIP changes', async () => {
    await a.agent.changePeer('198.19.2.0/24', '198.18.0.77'); // nobody there
    expect(await ping(a.cns, '198.19.2.2')).toBe(false);
    await a.agent.changePeer('198.19.2.0/24', '198.18.0.2');
    expect(await ping(a.cns, '198.19.2.2')).toBe(true);
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
