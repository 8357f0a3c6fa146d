import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatapathCounters } from '../../src/datapath/datapath.js';
import { Testbed } from '../../testbed/netns.js';
import { useTempDir } from '../helpers/fixtures.js';
import { DatapathAgent, dropDelta, startAgentHosts, type AgentHost } from './datapath-agent.js';

// Multi-queue: flannel0 opened with IFF_MULTI_QUEUE and two queues, each with its own SO_REUSEPORT socket on
// port 8285 and its own threads. The kernel spreads outgoing flows over the TUN queues by flow hash; incoming
// datagrams are spread over the sockets by a steering program that hashes the inner flow, since everything from
// one peer shares one outer address and port. h3 runs one queue without offloads, as flannel's own udp backend
// reads the wire, to show the wire did not change.
const NETWORK = '198.19.0.0/16';
const FLOWS = 16;

let bed: Testbed;
const tmp = useTempDir('mq');
const hosts: AgentHost[] = [];
const [h1, h2, h3] = [0, 1, 2].map((i) => () => hosts[i]);

beforeAll(async () => {
  bed = await Testbed.create('mq');
  hosts.push(
    ...(await startAgentHosts(bed, NETWORK, [
      { name: 'h1', n: 1, offload: true, queues: 2 },
      { name: 'h2', n: 2, offload: true, queues: 2 },
      { name: 'h3', n: 3, offload: false, queues: 1 },
    ])),
  );
}, 60_000);

afterAll(async () => {
  await bed?.cleanup();
});

function delta(before: DatapathCounters, after: DatapathCounters) {
  const drops = dropDelta(before, after);
  const queues = after.queues.map((q, i) => ({ tx: q.txPackets - before.queues[i].txPackets, rx: q.rxPackets - before.queues[i].rxPackets }));
  return { drops, queues };
}

/**
 * FLOWS TCP connections at once from one container to another, each carrying the same random file; returns the
 * sender's sha256 and the receiver's, one per flow.
 */
async function parallelTransfers(from: AgentHost, to: AgentHost, bytes: number, basePort: number): Promise<{ sent: string; received: string[] }> {
  const dir = tmp.file(`${from.name}-${to.name}`);
  const ports = Array.from({ length: FLOWS }, (_, i) => basePort + i);
  try {
    await bed.exec(from.ns, ['sh', '-c', `mkdir -p ${dir} && head -c ${bytes} /dev/urandom > ${dir}/send.bin`], { timeoutMs: 60_000 });
    const servers = ports.map((p) => `socat -u TCP-LISTEN:${p},reuseaddr OPEN:${dir}/recv-${p}.bin,creat,trunc &`).join(' ');
    const receiving = bed.exec(to.container.ns, ['timeout', '120', 'sh', '-c', `${servers} wait`], { timeoutMs: 130_000 });
    // Wait until every listener is up before the clients connect.
    await bed.exec(to.container.ns, ['sh', '-c', `for i in $(seq 100); do [ "$(ss -ltn | grep -c ':5[0-9]*')" -ge ${FLOWS} ] && exit 0; sleep 0.1; done; exit 1`]);
    const clients = ports.map((p) => `socat -u OPEN:${dir}/send.bin TCP:${to.container.ip}:${p} &`).join(' ');
    await bed.exec(from.container.ns, ['timeout', '120', 'sh', '-c', `${clients} wait`], { timeoutMs: 130_000 });
    await receiving;
    const sums = (await bed.exec(from.ns, ['sh', '-c', `sha256sum ${dir}/send.bin ${ports.map((p) => `${dir}/recv-${p}.bin`).join(' ')}`])).stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    return { sent: sums[0], received: sums.slice(1) };
  } finally {
    await bed.exec(from.ns, ['rm', '-rf', dir]).catch(() => undefined);
  }
}

describe('udp datapath with two TUN queues', () => {
  it('creates flannel0 as a multi-queue TUN', async () => {
    expect(await bed.ip(h1().ns, '-d', 'link', 'show', 'flannel0')).toMatch(/tun type tun .*multi_queue/);
    expect(await bed.ip(h3().ns, '-d', 'link', 'show', 'flannel0')).not.toMatch(/multi_queue/);
    expect((await h1().agent.counters()).queues).toHaveLength(2);
  });

  it(`${FLOWS} flows at once arrive intact, spread over both queues on the sender and both sockets on the receiver`, async () => {
    const before = await Promise.all([h1().agent.counters(), h2().agent.counters()]);
    const { sent, received } = await parallelTransfers(h1(), h2(), 4 << 20, 5300);
    expect(received).toEqual(Array(FLOWS).fill(sent));
    const [d1, d2] = [delta(before[0], await h1().agent.counters()), delta(before[1], await h2().agent.counters())];
    expect(d1.drops).toEqual({});
    expect(d2.drops).toEqual({});
    for (const q of d1.queues) expect(q.tx, `h1 queues ${JSON.stringify(d1.queues)}`).toBeGreaterThan(0);
    for (const q of d2.queues) expect(q.rx, `h2 queues ${JSON.stringify(d2.queues)}`).toBeGreaterThan(0);
  }, 180_000);

  it('a multi-queue host and a plain single-queue host still speak flannel to each other', async () => {
    for (const [from, to, port] of [[h1(), h3(), 5400], [h3(), h2(), 5500]] as const) {
      const before = await to.agent.counters();
      const { sent, received } = await parallelTransfers(from, to, 1 << 20, port);
      expect(received, `${from.name} -> ${to.name}`).toEqual(Array(FLOWS).fill(sent));
      expect(delta(before, await to.agent.counters()).drops, `${to.name} drops`).toEqual({});
    }
  }, 180_000);

  it('falls back to one queue, with a warning, when flannel0 already exists as a single-queue TUN', async () => {
    // An operator's `ip tuntap add flannel0 mode tun`: the kernel refuses to attach a multi-queue open to it.
    const ns = await bed.addHost('h4', '198.18.0.4');
    await bed.ip(ns, 'tuntap', 'add', 'dev', 'flannel0', 'mode', 'tun');
    const { agent, first } = await DatapathAgent.start(bed, ns, { localIp: '198.18.0.4', lease: '198.19.4.0/24', network: NETWORK, offload: true, queues: 2 });
    try {
      expect((first as { ready?: boolean }).ready, agent.stderr).toBe(true);
      expect((await agent.counters()).queues).toHaveLength(1);
      expect(agent.stderr).toContain('cannot open a multi-queue datapath; falling back to one queue');
      expect(agent.stderr).toContain('ioctl(TUNSETIFF flannel0, multi-queue) failed: EINVAL');
      expect(await bed.ip(ns, '-d', 'link', 'show', 'flannel0')).not.toMatch(/multi_queue/);
    } finally {
      await agent.close().catch(() => undefined);
    }
  });
});
