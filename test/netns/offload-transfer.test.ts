import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../../testbed/netns.js';
import { useTempDir } from '../helpers/fixtures.js';
import { dropDelta, startAgentHosts, transfer as transferBetween, type AgentHost } from './datapath-agent.js';

// Two hosts with offloads on (TSO from the TUN, UDP_SEGMENT on the wire, UDP_GRO + merging back to the TUN) and one
// with offloads off, which reads the wire exactly as flannel's own udp backend does: one IPv4 packet per datagram.
// A stream from an offloading host to the plain one only arrives if every split segment is a complete, correctly
// checksummed packet no larger than the MTU: the plain host's TUN hands it to a kernel that verifies TCP checksums.
const NETWORK = '198.19.0.0/16';

type Host = AgentHost;

let bed: Testbed;
const dir = useTempDir('ot');
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

const transfer = (from: Host, to: Host, bytes: number, port: number) => transferBetween(bed, from, to, bytes, port, dir.path);

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
