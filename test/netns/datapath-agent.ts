import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { vi } from 'vitest';
import type { DatapathCounters, DatapathFailure } from '../../src/datapath/datapath.js';
import { leaseRunsFastPath } from '../../src/backend/udp/fastpath-lease.js';
import type { FastPathAttach, FastPathCounters } from '../../src/datapath/udp-fastpath.js';
import type { Testbed } from '../../testbed/netns.js';
import { sendRandomFile } from '../../testbed/transfer.js';

const AGENT_SCRIPT = join(import.meta.dirname, '..', 'fixtures', 'datapath-agent.mjs');

export interface AgentOptions {
  localIp: string;
  lease: string;
  network: string;
  port?: number;
  ifaceMtu?: number;
  antiSpoofing?: boolean;
  offload?: boolean;
  queues?: number;
  /** Runs the udp fast path beside the engine (true: attach as the kernel allows). */
  fastPath?: boolean | FastPathAttach;
}

type Reply = {
  ok?: true;
  ready?: true;
  closed?: true;
  /** A failed start: the message, and the errno name and call when a system call failed. */
  error?: string;
  code?: string;
  syscall?: string;
  counters?: DatapathCounters;
  failure?: DatapathFailure | null;
  fastPath?: FastPathCounters;
  mtu?: number;
  /** BackendData of the lease this host would publish. */
  leaseData?: unknown;
};

/**
 * The udp backend network running in a host namespace (test/fixtures/datapath-agent.mjs), driven over stdin:
 * peer leases go in as commands, counters come back. No etcd: this tests the datapath and kernel plumbing alone.
 */
export class DatapathAgent {
  private readonly replies: Reply[] = [];
  private waiters: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const r = JSON.parse(line) as Reply;
      const w = this.waiters.shift();
      if (w) w.resolve(r);
      else this.replies.push(r);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        resolve(code);
        // Let the last lines it printed be delivered first.
        setImmediate(() => {
          for (const w of this.waiters.splice(0)) w.reject(new Error(`datapath agent exited (${code}); stderr: ${this.stderr}`));
        });
      }),
    );
  }

  /** Starts the agent in `ns` and waits for its first line (ready, or the startup error). */
  static async start(bed: Testbed, ns: string, opts: AgentOptions): Promise<{ agent: DatapathAgent; first: Reply }> {
    const child = bed.spawn(ns, [process.execPath, AGENT_SCRIPT, JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const agent = new DatapathAgent(child);
    return { agent, first: await agent.next() };
  }

  async addPeer(subnet: string, publicIp: string, backendType?: string, backendData?: unknown): Promise<void> {
    await this.command({ cmd: 'add', subnet, publicIp, backendType, backendData });
  }

  /** A lease event of type `changed` (e.g. the peer's PublicIP moved). */
  async changePeer(subnet: string, publicIp: string, backendData?: unknown): Promise<void> {
    await this.command({ cmd: 'change', subnet, publicIp, backendData });
  }

  async removePeer(subnet: string, publicIp: string): Promise<void> {
    await this.command({ cmd: 'remove', subnet, publicIp });
  }

  async counters(): Promise<DatapathCounters> {
    return (await this.command({ cmd: 'counters' })).counters!;
  }

  /** null while the datapath runs; else why its packet threads stopped. */
  async failure(): Promise<DatapathFailure | null> {
    return (await this.command({ cmd: 'failure' })).failure ?? null;
  }

  /** The engine's and the fast path's counters from one snapshot (fastPath undefined when it does not run). */
  async allCounters(): Promise<CounterSnapshot> {
    const r = await this.command({ cmd: 'counters' });
    return { engine: r.counters!, fastPath: r.fastPath };
  }

  async close(): Promise<Reply> {
    return this.command({ cmd: 'close' });
  }

  /** Makes the agent call process.exit(0) without closing anything; resolves with its exit code. */
  async exitWithoutClose(): Promise<number | null> {
    this.child.stdin!.write(`${JSON.stringify({ cmd: 'exit' })}\n`);
    return this.exited;
  }

  private async command(c: object): Promise<Reply> {
    this.child.stdin!.write(`${JSON.stringify(c)}\n`);
    const r = await this.next();
    if (r.error) throw new Error(`datapath agent: ${r.error}`);
    return r;
  }

  private next(timeoutMs = 15_000): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`datapath agent did not answer within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }
}

/** A test host running the udp backend's network through an agent, with a container behind its bridge. */
export interface AgentHost {
  name: string;
  ns: string;
  ip: string;
  lease: string;
  container: { ns: string; ip: string };
  agent: DatapathAgent;
  /** BackendData of its lease, as the backend made it: peers learn from it whether it runs the fast path. */
  leaseData: unknown;
}

export interface AgentHostSpec {
  name: string;
  n: number;
  offload: boolean;
  antiSpoofing?: boolean;
  queues?: number;
  port?: number;
  fastPath?: boolean | FastPathAttach;
}

/** Whether `host`'s lease says it runs the fast path. */
export function runsFastPath(host: AgentHost): boolean {
  return leaseRunsFastPath({ PublicIP: host.ip, BackendData: host.leaseData });
}

/**
 * Host N gets underlay 198.18.0.N, lease 198.19.N.0/24 and a container 198.19.N.2 with FLANNEL_MTU (1472), as docker
 * --bip/--mtu would set it up; every host then learns every other host's lease (a full mesh of peers).
 */
export async function startAgentHosts(bed: Testbed, network: string, specs: readonly AgentHostSpec[]): Promise<AgentHost[]> {
  const hosts: AgentHost[] = [];
  for (const s of specs) hosts.push(await startAgentHost(bed, network, s));
  for (const [i, h] of hosts.entries()) for (const other of hosts.slice(i + 1)) await pairAgents(h, other);
  return hosts;
}

/** `a` and `b` learn each other's leases (with their BackendData), as their lease watches would. */
export async function pairAgents(a: AgentHost, b: AgentHost): Promise<void> {
  await a.agent.addPeer(b.lease, b.ip, undefined, b.leaseData);
  await b.agent.addPeer(a.lease, a.ip, undefined, a.leaseData);
}

/** One host as startAgentHosts builds it, without peers. */
export async function startAgentHost(bed: Testbed, network: string, s: AgentHostSpec): Promise<AgentHost> {
  const ip = `198.18.0.${s.n}`;
  const lease = `198.19.${s.n}.0/24`;
  const ns = await bed.addHost(s.name, ip);
  const cns = await bed.addContainer(ns, `${s.name}c`, `198.19.${s.n}.1/24`, `198.19.${s.n}.2`);
  await bed.ip(cns, 'link', 'set', 'eth0', 'mtu', '1472');
  const { agent, first } = await DatapathAgent.start(bed, ns, {
    localIp: ip,
    lease,
    network,
    offload: s.offload,
    ...(s.antiSpoofing === undefined ? {} : { antiSpoofing: s.antiSpoofing }),
    ...(s.queues === undefined ? {} : { queues: s.queues }),
    ...(s.port === undefined ? {} : { port: s.port }),
    ...(s.fastPath ? { fastPath: s.fastPath } : {}),
  });
  if (!(first as { ready?: boolean }).ready) throw new Error(`datapath agent on ${s.name} did not start: ${JSON.stringify(first)} ${agent.stderr}`);
  return { name: s.name, ns, ip, lease, container: { ns: cns, ip: `198.19.${s.n}.2` }, agent, leaseData: first.leaseData };
}

/** Counts that changed between two snapshots of counters by reason; reasons that did not move are left out. */
function countDelta(before: Readonly<Record<string, number>> = {}, after: Readonly<Record<string, number>> = {}): Record<string, number> {
  return Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== (before[k] ?? 0)).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

/** Drops that happened between two counter snapshots, by reason; reasons that did not move are left out. */
export function dropDelta(before: DatapathCounters, after: DatapathCounters): Record<string, number> {
  return countDelta(before.drops, after.drops);
}

/** The engine's and the fast path's counters read at one moment (DatapathAgent.allCounters). */
export type CounterSnapshot = { engine: DatapathCounters; fastPath?: FastPathCounters };

/** What moved between two snapshots: engine datagrams, fast-path datagrams and super packets, drops and hand-offs. */
export type Moved = ReturnType<typeof moved>;

export function moved(before: CounterSnapshot, after: CounterSnapshot) {
  const fp = (k: 'txPackets' | 'rxPackets' | 'txSuperPackets' | 'rxSuperPackets') => (after.fastPath?.[k] ?? 0) - (before.fastPath?.[k] ?? 0);
  return {
    engineTx: after.engine.txPackets - before.engine.txPackets,
    engineRx: after.engine.rxPackets - before.engine.rxPackets,
    engineDrops: dropDelta(before.engine, after.engine),
    tx: fp('txPackets'),
    rx: fp('rxPackets'),
    txSuper: fp('txSuperPackets'),
    rxSuper: fp('rxSuperPackets'),
    drops: countDelta(before.fastPath?.drops, after.fastPath?.drops),
    passed: countDelta(before.fastPath?.passed, after.fastPath?.passed),
  };
}

/**
 * Waits (3 s at most) until what moved on `host` since `before` passes `check` (which asserts with expect): an engine
 * counts a datagram once sendmmsg returns, and on veth that can be after the answer to it has arrived.
 */
export async function settledMoves(host: AgentHost, before: CounterSnapshot, check: (m: Moved) => void): Promise<void> {
  await vi.waitFor(async () => check(moved(before, await host.agent.allCounters())), { timeout: 3000, interval: 100 });
}

/**
 * Sends `bytes` of random data from one host's container to another's over TCP (socat); returns the sha256 of what
 * was sent and of what arrived. Both files are made in `dir` (the test's own) and removed afterwards.
 */
export async function transfer(bed: Testbed, from: AgentHost, to: AgentHost, bytes: number, port: number, dir: string): Promise<[string, string]> {
  const src = join(dir, `${from.name}-send.bin`);
  const dst = join(dir, `${to.name}-recv.bin`);
  return sendRandomFile(bed, { fromNs: from.container.ns, toNs: to.container.ns, toIp: to.container.ip, port, bytes, src, dst });
}
