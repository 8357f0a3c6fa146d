import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, waitFor } from '../../testbed/netns.js';
import { dropDelta, startAgentHosts, type AgentHost } from './datapath-agent.js';

// Two hosts with offloads on (TSO from the TUN, UDP_SEGMENT on the wire, UDP_GRO + merging back to the TUN) and one
// with offloads off, which reads the wire exactly as flannel's own udp backend does: one IPv4 packet per datagram.
// A stream from an offloading host to the plain one only arrives if every split segment is a complete, correctly
// checksummed packet no larger than the MTU: the plain host's TUN hands it to a kernel that verifies TCP checksums.
const NETWORK = '198.19.0.0/16';

type Host = AgentHost;

let bed: Testbed;
const hosts: Host[] = [];

beforeAll(async () => {
  bed = await Testbed.create('ot');
  const specs = [{ name: 'h1', n: 1, offload: true }, { name: 'h2', n: 2, offload: true }, { name: 'h3', n: 3, offload: false }];
  hosts.push(...(await startAgentHosts(bed, NETWORK, specs)));
}, 60_000);

afterAll(async () => {
  await bed?.cleanup();
});

const [h1, h2, h3] = [0, 1, 2].map((i) => () => hosts[i]);

async function sha256(ns: string, file: string): Promise<string> {
  return (await bed.exec(ns, ['sha256sum', file])).stdout.split(' ')[0];
}

/** Sends `bytes` of random data from one container to another over TCP; returns both files' sha256. */
async function transfer(from: Host, to: Host, bytes: number, port: number): Promise<[string, string]> {
  const src = `/tmp/${bed.prefix}-${from.name}-send.bin`;
  const dst = `/tmp/${bed.prefix}-${to.name}-recv.bin`;
  try {
    await bed.exec(from.ns, ['sh', '-c', `head -c ${bytes} /dev/urandom > ${src}`], { timeoutMs: 60_000 });
    const server = bed.spawn(to.container.ns, ['socat', '-u', `TCP-LISTEN:${port},reuseaddr`, `OPEN:${dst},creat,trunc`]);
    const serverDone = new Promise<number | null>((resolve) => server.on('exit', resolve));
    await waitFor('socat listening', async () => (await bed.exec(to.container.ns, ['ss', '-ltn'])).stdout.includes(`:${port}`), 10_000);
    await bed.exec(from.container.ns, ['socat', '-u', `OPEN:${src}`, `TCP:${to.container.ip}:${port}`], { timeoutMs: 120_000 });
    expect(await serverDone).toBe(0);
    return [await sha256(from.ns, src), await sha256(to.ns, dst)];
  } finally {
    await bed.exec(from.ns, ['rm', '-f', src, dst]).catch(() => undefined);
  }
}

describe('udp datapath with TSO/GRO offloads', () => {
  it('200 MB between two offloading hosts arrives intact, split into datagrams on one side and merged on the other', async () => {
    const before = await Promise.all([h1().agent.counters(), h2().agent.counters()]);
    const [sent, received] = await transfer(h1(), h2(), 200 << 20, 5101);
    expect(received).toBe(sent);
    const after = await Promise.all([h1().agent.counters(), h2().agent.counters()]);
    expect(after[0].gsoSplits - before[0].gsoSplits).toBeGreaterThan(0);
    expect(after[1].groMerges - before[1].groMerges).toBeGreaterThan(0);
    expect(dropDelta(before[0], after[0])).toEqual({});
    expect(dropDelta(before[1], after[1])).toEqual({});
  }, 240_000);

  it('an offloading sender speaks plain flannel to a host without offloads, and back', async () => {
    for (const [from, to, port] of [[h1(), h3(), 5102], [h3(), h2(), 5103]] as const) {
      const before = await Promise.all([from.agent.counters(), to.agent.counters()]);
      const [sent, received] = await transfer(from, to, 30 << 20, port);
      expect(received, `${from.name} -> ${to.name}`).toBe(sent);
      const after = await Promise.all([from.agent.counters(), to.agent.counters()]);
      expect(dropDelta(before[1], after[1]), `${to.name} drops`).toEqual({});
      if (from === h1()) expect(after[0].gsoSplits - before[0].gsoSplits).toBeGreaterThan(0);
      if (to === h2()) expect(after[1].groMerges - before[1].groMerges).toBeGreaterThan(0);
    }
    const c3 = await h3().agent.counters();
    expect(c3.gsoSplits + c3.groMerges).toBe(0);
  }, 240_000);
});
