import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { SWITCH_IP, type Testbed } from './netns.js';
import { terminate } from './proc.js';
import { makeTempDir } from './tempdir.js';

const run = promisify(execFile);

export interface EtcdTls {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface EtcdServerOptions {
  /** Run inside this network namespace (e.g. a testbed's switch), listening on `host`. */
  readonly netns?: string;
  readonly host?: string;
  readonly port?: number;
  /** Serve TLS and require client certificates signed by caFile. */
  readonly tls?: EtcdTls;
  /** Reuse a data dir (to restart the same etcd). */
  readonly dataDir?: string;
  /** Member of a cluster (EtcdCluster): its name, fixed peer port and the cluster's `--initial-cluster`. */
  readonly member?: { readonly name: string; readonly peerPort: number; readonly initialCluster: string };
}

/** One permission of an etcd role: `read`, `write` or `readwrite` on a key, or on every key under it with `prefix`. */
export interface EtcdGrant {
  readonly perm: 'read' | 'write' | 'readwrite';
  readonly key: string;
  readonly prefix?: boolean;
}

/** etcd where a test bed's hosts reach it, as a cluster's etcd would be: on the switch, at flannel's default port. */
export function etcdOnSwitch(bed: Testbed): EtcdServerOptions {
  return { netns: bed.switchNs, host: SWITCH_IP, port: 2379 };
}

/**
 * A real etcd server: its own data dir and port, stopped by PID. Constructed stopped, so a test file can hold one
 * from its first line (see test/helpers/fixtures.ts); `launch()` starts it, and starts it again after `kill()`.
 */
export class EtcdServer {
  private child: ChildProcess | undefined;
  /** Chosen at the first launch and kept, so a restarted server is the same server. */
  private placement: { host: string; port: number; dataDir: string } | undefined;
  private networks = 0;
  /** `root:<password>` once enableAuth() has run: etcdctl then authenticates as root. */
  private rootUser: string | undefined;

  constructor(private readonly opts: EtcdServerOptions = {}) {}

  static async start(opts: EtcdServerOptions = {}): Promise<EtcdServer> {
    const server = new EtcdServer(opts);
    await server.launch();
    return server;
  }

  get endpoint(): string {
    if (!this.placement) throw new Error('etcd has not been launched yet');
    return `${this.opts.tls ? 'https' : 'http'}://${this.placement.host}:${this.placement.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process; after kill() it starts again on the same port and data dir. */
  async launch(): Promise<void> {
    this.placement ??= {
      host: this.opts.host ?? '127.0.0.1',
      port: this.opts.port ?? (await freePort()),
      dataDir: this.opts.dataDir ?? (await makeTempDir('etcd')),
    };
    const member = this.opts.member;
    const name = member?.name ?? 'test';
    const peerPort = member?.peerPort ?? (await freePort());
    const args = [
      '--name', name,
      '--data-dir', this.placement.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', member?.initialCluster ?? `${name}=http://127.0.0.1:${peerPort}`,
      '--log-level', 'error',
    ];
    if (this.opts.tls) {
      args.push('--cert-file', this.opts.tls.certFile, '--key-file', this.opts.tls.keyFile);
      args.push('--client-cert-auth', '--trusted-ca-file', this.opts.tls.caFile);
    }
    const argv = this.opts.netns ? ['ip', 'netns', 'exec', this.opts.netns, 'etcd', ...args] : ['etcd', ...args];
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await this.ctl(['endpoint', 'health'], 3_000);
        return;
      } catch (err) {
        if (this.child.exitCode !== null || Date.now() > deadline) {
          const endpoint = this.endpoint;
          await this.stop();
          throw new Error(`etcd did not become healthy at ${endpoint}: ${stderr || err}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Runs etcdctl (v3 API) against this server, inside its namespace when it has one. */
  async ctl(args: string[], timeoutMs = 10_000): Promise<string> {
    const tls = this.opts.tls ? ['--cacert', this.opts.tls.caFile, '--cert', this.opts.tls.certFile, '--key', this.opts.tls.keyFile] : [];
    const user = this.rootUser ? ['--user', this.rootUser] : [];
    const argv = ['etcdctl', '--endpoints', this.endpoint, ...tls, ...user, ...args];
    const full = this.opts.netns ? ['ip', 'netns', 'exec', this.opts.netns, ...argv] : argv;
    const { stdout } = await run(full[0], full.slice(1), { timeout: timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  /**
   * A key prefix nobody else got from this server (`/test-<n>/network`), so tests sharing it never see each other's
   * keys; with `config`, the network config is written under it first.
   */
  async network(config?: string): Promise<string> {
    const prefix = `/test-${++this.networks}/network`;
    if (config !== undefined) await this.put(`${prefix}/config`, config);
    return prefix;
  }

  async put(key: string, value: string): Promise<void> {
    await this.ctl(['put', key, value]);
  }

  async get(key: string): Promise<string | undefined> {
    const out = await this.ctl(['get', key, '--print-value-only']);
    return out === '' ? undefined : out.replace(/\n$/, '');
  }

  /** key → value for every key under a prefix. */
  async dump(prefix: string): Promise<Record<string, string>> {
    const out = await this.ctl(['get', prefix, '--prefix', '-w', 'json']);
    const parsed = JSON.parse(out) as { kvs?: { key: string; value: string }[] };
    const result: Record<string, string> = {};
    for (const kv of parsed.kvs ?? []) {
      result[Buffer.from(kv.key, 'base64').toString()] = Buffer.from(kv.value, 'base64').toString();
    }
    return result;
  }

  /**
   * A value etcd reports at /metrics, e.g. etcd_mvcc_range_total (reads served) or etcd_debugging_mvcc_watcher_total
   * (watches open): what a client did, seen from the server. Plain http outside a namespace only.
   */
  async metric(name: string): Promise<number> {
    if (this.opts.netns || this.opts.tls) throw new Error('metric() reads plain http from this namespace');
    const text = await (await fetch(`${this.endpoint}/metrics`)).text();
    const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
    if (value === undefined) throw new Error(`etcd reports no metric ${name}`);
    return Number(value);
  }

  /**
   * Turns authentication on, with a root user (etcdctl then acts as root) and one user per entry of `users`, each
   * with a role of the same name holding the grants given.
   */
  async enableAuth(rootPassword: string, users: readonly { name: string; password: string; grants: readonly EtcdGrant[] }[]): Promise<void> {
    await this.ctl(['user', 'add', `root:${rootPassword}`]);
    await this.ctl(['user', 'grant-role', 'root', 'root']);
    for (const user of users) {
      await this.ctl(['role', 'add', user.name]);
      for (const g of user.grants) await this.ctl(['role', 'grant-permission', ...(g.prefix ? ['--prefix=true'] : []), user.name, g.perm, g.key]);
      await this.ctl(['user', 'add', `${user.name}:${user.password}`]);
      await this.ctl(['user', 'grant-role', user.name, user.name]);
    }
    await this.ctl(['auth', 'enable']);
    this.rootUser = `root:${rootPassword}`;
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process: an etcd that holds its connections open and answers nothing. */
  freeze(frozen: boolean): void {
    if (this.child?.pid) process.kill(this.child.pid, frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Kills the process (SIGKILL) and waits for it; keeps the data dir so launch() can restart it. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child) await terminate(child, 'SIGKILL');
  }

  /** Kills the process and removes the data dir it made (a dataDir passed in belongs to the caller). */
  async stop(): Promise<void> {
    await this.kill();
    if (this.placement && !this.opts.dataDir) await rm(this.placement.dataDir, { recursive: true, force: true });
    this.placement = undefined;
  }
}

/** A cluster of real etcd members on loopback, each with its own ports and data dir (for failover tests). */
export class EtcdCluster {
  private constructor(readonly members: readonly EtcdServer[]) {}

  static async start(size = 3): Promise<EtcdCluster> {
    const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), peer: await freePort() })));
    const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
    // Members become healthy only together (quorum), so they start at once.
    const started = await Promise.allSettled(
      ports.map((p, i) => EtcdServer.start({ port: p.client, member: { name: `m${i}`, peerPort: p.peer, initialCluster } })),
    );
    const members = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(members.map((m) => m.stop()));
      throw failed.reason;
    }
    return new EtcdCluster(members);
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  /** The member that is leader now, asked of the members that answer. */
  async leader(): Promise<EtcdServer> {
    for (const member of this.members) {
      try {
        const [{ Status }] = JSON.parse(await member.ctl(['endpoint', 'status', '-w', 'json'], 3_000)) as { Status: { leader: string; header: { member_id: string } } }[];
        if (Status.leader === Status.header.member_id) return member;
      } catch {
        // down or frozen: ask the next one
      }
    }
    throw new Error('no etcd member says it is the leader');
  }

  /** etcdctl against every member, as a client configured with the whole cluster. */
  async ctl(args: string[], timeoutMs = 10_000): Promise<string> {
    const { stdout } = await run('etcdctl', ['--endpoints', this.endpoints.join(','), ...args], { timeout: timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
