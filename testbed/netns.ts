import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readlink, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { interruption } from './interrupt.js';
import { alive, kill, processes, terminate } from './proc.js';

/** Fixed, locally administered bridge addresses (see Testbed.setUp); each cbr0 is its own L2 segment, so one will do. */
const BRIDGE_MAC = { switch: '02:00:c6:12:00:fe', container: '02:00:c6:13:00:01' } as const;

const run = promisify(execFile);

/** The switch's own address on the underlay: where hosts find etcd (and the default gateway, when a test adds one). */
export const SWITCH_IP = '198.18.0.254';

/**
 * Network-namespace test hosts on one machine. Names carry the creating process's PID (`ft-<pid>-...`) so a later
 * run can tell leftovers of a crashed run (PID gone) from namespaces a parallel test file is using right now.
 * Addresses: underlay 198.18.0.0/24 on a bridge in the switch namespace; overlays inside 198.19.0.0/16 (RFC 2544).
 */
export class Testbed {
  readonly prefix: string;
  readonly switchNs: string;
  private readonly namespaces: string[] = [];
  /** nsfs inode of every namespace we made, so processes still inside one can be found after it is deleted. */
  private readonly namespaceInodes = new Set<number>();
  private readonly processes: ChildProcess[] = [];
  private vethCount = 0;

  /** Not set up yet: `setUp()` creates the switch (or use `Testbed.create`). */
  constructor(tag: string) {
    if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new Error(`testbed tag must be 1-8 lowercase letters or digits: ${tag}`);
    this.prefix = `ft-${process.pid}-${tag}`;
    this.switchNs = `${this.prefix}-sw`;
  }

  static async create(tag: string): Promise<Testbed> {
    const bed = new Testbed(tag);
    await bed.setUp();
    return bed;
  }

  /** Creates the switch namespace with bridge br0 at 198.18.0.254/24 (after removing crashed runs' leftovers). */
  async setUp(): Promise<void> {
    await cleanupStaleNamespaces();
    await this.addNamespace(this.switchNs);
    // A bridge without an address of its own takes the lowest MAC among its ports, so it changes when a host with a
    // lower one joins; hosts that resolved 198.18.0.254 before then keep sending to the old MAC, which the bridge no
    // longer treats as its own, and lose etcd until their neighbour entry expires. A set address never changes.
    await this.ip(this.switchNs, 'link', 'add', 'br0', 'address', BRIDGE_MAC.switch, 'type', 'bridge');
    await this.ip(this.switchNs, 'addr', 'add', `${SWITCH_IP}/24`, 'dev', 'br0');
    await this.ip(this.switchNs, 'link', 'set', 'br0', 'up');
  }

  /** A host namespace whose eth0 (198.18.0.N/24) is plugged into the switch. Forwarding is on: hosts route. */
  async addHost(name: string, underlayIp: string): Promise<string> {
    const ns = `${this.prefix}-${name}`;
    await this.addNamespace(ns);
    const outside = await this.veth(ns, 'eth0', this.switchNs);
    await this.ip(this.switchNs, 'link', 'set', outside, 'master', 'br0', 'up');
    await this.ip(ns, 'addr', 'add', `${underlayIp}/24`, 'dev', 'eth0');
    await this.ip(ns, 'link', 'set', 'eth0', 'up');
    await this.exec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    return ns;
  }

  /**
   * A container behind host `hostNs`: bridge cbr0 in the host holding `bridgeCidr` (the lease's first address,
   * as docker0 would with --bip) and a container namespace with `ip` and a default route to the bridge.
   */
  async addContainer(hostNs: string, name: string, bridgeCidr: string, ip: string): Promise<string> {
    const ns = `${this.prefix}-${name}`;
    await this.addNamespace(ns);
    const [gateway, prefixLen] = bridgeCidr.split('/');
    await this.addBridge(hostNs, bridgeCidr);
    const outside = await this.veth(ns, 'eth0', hostNs);
    await this.ip(hostNs, 'link', 'set', outside, 'master', 'cbr0', 'up');
    await this.ip(ns, 'addr', 'add', `${ip}/${prefixLen}`, 'dev', 'eth0');
    await this.ip(ns, 'link', 'set', 'eth0', 'up');
    await this.ip(ns, 'route', 'add', 'default', 'via', gateway);
    return ns;
  }

  /** The container bridge cbr0 in host `hostNs`, holding `bridgeCidr` as docker0 would with --bip (and --mtu). */
  async addBridge(hostNs: string, bridgeCidr: string, mtu?: number): Promise<void> {
    // A second container behind the same host shares its bridge; any other failure is real.
    await this.ip(hostNs, 'link', 'add', 'cbr0', 'address', BRIDGE_MAC.container, 'type', 'bridge').catch((err: Error) => {
      if (!/File exists/.test(err.message)) throw err;
    });
    await this.ip(hostNs, 'addr', 'replace', bridgeCidr, 'dev', 'cbr0');
    await this.ip(hostNs, 'link', 'set', 'cbr0', ...(mtu ? ['mtu', String(mtu)] : []), 'up');
  }

  /** Runs a command in a namespace to its end (bounded; an interrupted run kills it, see interruption). */
  async exec(ns: string, argv: string[], opts: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
    return run('ip', ['netns', 'exec', ns, ...argv], { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, signal: interruption });
  }

  /**
   * Pings `to` from namespace `ns`: `count` echoes 0.2 s apart, waiting 1 s for the last; ok when one came back.
   * `options` go to ping as they are (e.g. `-R` for record route, `-t 2` for the TTL, `-s 3000` for the size).
   */
  async ping(ns: string, to: string, count = 1, options: readonly string[] = []): Promise<{ ok: boolean; output: string }> {
    try {
      return { ok: true, output: (await this.exec(ns, ['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', ...options, to])).stdout };
    } catch (err) {
      return { ok: false, output: String((err as { stdout?: string }).stdout ?? err) };
    }
  }

  /** Starts a long-running process in a namespace; it is killed by cleanup() if still running, or when the run is interrupted. */
  spawn(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], signal: interruption, ...opts });
    // An interrupted run kills it through `signal`; the AbortError that follows is expected, not a crash.
    child.on('error', (err) => {
      if (err.name !== 'AbortError') throw err;
    });
    this.processes.push(child);
    return child;
  }

  /**
   * Waits (bounded) until a socket in namespace `ns` listens on local `port` (TCP, or bound for UDP): a server just
   * spawned there is ready for its client.
   */
  async waitForListener(ns: string, port: number, proto: 'tcp' | 'udp' = 'tcp', timeoutMs = 10_000): Promise<void> {
    const flags = proto === 'tcp' ? '-Hltn' : '-Hlun';
    await waitFor(`a ${proto} listener on port ${port} in ${ns}`, async () => (await this.exec(ns, ['ss', flags, `sport = :${port}`])).stdout.trim() !== '', timeoutMs);
  }

  /** Runs `ip -o monitor <objects>` in a namespace; the returned function stops it and gives the lines it printed. */
  monitor(ns: string, ...objects: string[]): () => Promise<string[]> {
    const child = this.spawn(ns, ['ip', '-o', 'monitor', ...objects]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    return async () => {
      await terminate(child, 'SIGTERM');
      return out.split('\n').filter(Boolean);
    };
  }

  async ip(ns: string, ...args: string[]): Promise<string> {
    const argv = ns ? ['-n', ns, ...args] : args;
    try {
      return (await run('ip', argv, { timeout: 10_000 })).stdout;
    } catch (err) {
      throw new Error(`ip ${argv.join(' ')} failed: ${(err as { stderr?: string }).stderr?.trim() ?? err}`);
    }
  }

  /** PIDs of the processes running in a namespace. */
  async pids(ns: string): Promise<number[]> {
    return (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  /**
   * Kills every process started here or still running in our namespaces, deletes the namespaces, and then waits
   * (bounded) until leftoverProcesses() finds nothing, killing what it finds that escaped the first round (a process
   * in a namespace whose name someone deleted, a daemon that forked away). Resolves with those escaped processes, a
   * leak worth reporting; rejects if any is still there after the wait.
   */
  async cleanup(): Promise<{ pid: number; command: string }[]> {
    const killed = new Set<number>();
    for (const child of this.processes) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGKILL');
      if (child.pid) killed.add(child.pid);
    }
    for (const ns of [...this.namespaces].reverse()) for (const pid of await deleteNamespace(ns)) killed.add(pid);
    this.namespaces.length = 0;
    const escaped = new Map<number, { pid: number; command: string }>();
    // A SIGKILLed process stays in its namespace until it is gone, a moment later: wait for those, kill the others.
    await waitFor(
      `every process in ${this.prefix}'s namespaces to be gone`,
      async () => {
        const left = await this.leftoverProcesses();
        for (const p of left.filter((p) => !killed.has(p.pid))) {
          escaped.set(p.pid, p);
          killed.add(p.pid);
          kill(p.pid);
        }
        return left.length === 0;
      },
      10_000,
    );
    return [...escaped.values()];
  }

  /**
   * Processes still inside any namespace this testbed made, found by the namespace's inode in /proc/<pid>/ns/net,
   * so a daemon that forked away from the child we spawned (iperf3 -D, say) is found too, even after cleanup()
   * deleted the namespace's name. Exited processes waiting to be reaped have no namespace and do not count.
   */
  async leftoverProcesses(): Promise<{ pid: number; command: string }[]> {
    const found: { pid: number; command: string }[] = [];
    for (const { pid, argv } of await processes()) {
      const link = await readlink(`/proc/${pid}/ns/net`).catch(() => '');
      const inode = /^net:\[(\d+)\]$/.exec(link)?.[1];
      if (!inode || !this.namespaceInodes.has(Number(inode))) continue;
      found.push({ pid, command: argv.filter(Boolean).join(' ') });
    }
    return found;
  }

  private async addNamespace(ns: string): Promise<void> {
    await run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.namespaceInodes.add((await stat(`/run/netns/${ns}`)).ino);
    await this.ip(ns, 'link', 'set', 'lo', 'up');
  }

  /**
   * A veth pair made in place by one request: `insideName` in `ns`, the other end in `outsideNs`, never in the root
   * namespace (where a failure half-way would leave it with nothing to sweep it). The other end is named after a
   * counter of this testbed, so it is unique in any namespace of ours; returns that name.
   */
  private async veth(ns: string, insideName: string, outsideNs: string): Promise<string> {
    const outside = `veth${this.vethCount++}`;
    await this.ip('', 'link', 'add', insideName, 'netns', ns, 'type', 'veth', 'peer', 'name', outside, 'netns', outsideNs);
    return outside;
  }
}

/** SIGKILLs the processes in a namespace and deletes it; resolves with the PIDs it killed. */
async function deleteNamespace(ns: string): Promise<number[]> {
  const pids = await run('ip', ['netns', 'pids', ns]).then((r) => r.stdout.split(/\s+/).filter(Boolean).map(Number), () => []);
  for (const pid of pids) kill(pid);
  await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  return pids;
}

/** Deletes namespaces left by test runs whose process no longer exists. */
async function cleanupStaleNamespaces(): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const match = /^(ft-(\d+)-\S+)/.exec(line);
    if (match && !alive(Number(match[2]))) await deleteNamespace(match[1]);
  }
}

/**
 * Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. An error that
 * `isFinal` accepts ends the wait at once (the thing waited on is gone); any other error is retried, unless the run
 * was interrupted (its commands fail then: see interruption).
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  isFinal: (err: unknown) => boolean = () => false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (isFinal(err) || interruption.aborted) throw err;
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ''}`);
}
