import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/package-info.js';
import { MK_DOCKER_OPTS } from './built.js';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { alive } from './netns.js';

const run = promisify(execFile);

/** The image every test container runs: static busybox and its applets, no registry needed. */
export const BUSYBOX_IMAGE = 'ft-busybox:local';
const APPLETS = ['sh', 'ping', 'nc', 'httpd', 'sleep', 'cat', 'echo', 'printf', 'ip', 'hostname'];
/** What the image's httpd serves at / (from /www/index.html). */
export const PAGE_BODY = 'served by flannel-ts test container';

const DIR_PREFIX = 'ft-dockerd-';
const IMAGE_PREFIX = 'ft-busybox-';

/**
 * A real dockerd (Debian's docker.io) inside a test host's network namespace, as real-clients.md describes:
 * entered with nsenter (not `ip netns exec`, which remounts /sys and hides the cgroup mounts), with its own
 * data-root, exec-root, socket, pidfile, config file and cgroup parent under one temp dir, on the vfs driver.
 *
 * Everything it leaves is found again from that dir's name (`ft-dockerd-<test pid>-...`), so stop() — and
 * cleanupStaleDockerds() after a crashed run — removes all of it: containers, containerd and its shims, the
 * cgroups of the containers, and the netns bind mounts under exec-root.
 */
export class Dockerd {
  private constructor(
    readonly ns: string,
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  get socket(): string {
    return join(this.dir, 'sock');
  }

  /** Starts dockerd in namespace `ns` with `args` appended (the flannel options), and waits until it answers. */
  static async start(ns: string, args: readonly string[]): Promise<Dockerd> {
    const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    await writeFile(join(dir, 'daemon.json'), '{}\n'); // not the machine's /etc/docker/daemon.json
    const logFd = openSync(join(dir, 'dockerd.log'), 'a');
    const argv = [
      `--net=/var/run/netns/${ns}`, 'dockerd',
      '--config-file', join(dir, 'daemon.json'),
      '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'dockerd.pid'),
      '-H', `unix://${join(dir, 'sock')}`,
      '--storage-driver', 'vfs',
      '--cgroup-parent', cgroupParent(dir),
      '--shutdown-timeout', '2',
      ...args,
    ];
    const child = spawn('nsenter', argv, { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const dockerd = new Dockerd(ns, dir, child);
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dockerd exited (${child.exitCode ?? child.signalCode})`);
        if (await dockerd.docker(['version'], 5_000).then(() => true, () => false)) break;
        if (Date.now() > deadline) throw new Error('dockerd did not answer within 60 s');
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (err) {
      const log = await readFile(join(dir, 'dockerd.log'), 'utf8').catch(() => '');
      await dockerd.stop();
      throw new Error(`${(err as Error).message}; dockerd ${argv.slice(1).join(' ')}:\n${log.slice(-3000)}`);
    }
    return dockerd;
  }

  /** Runs the docker CLI against this daemon; resolves with its standard output. */
  async docker(args: readonly string[], timeoutMs = 30_000): Promise<string> {
    return (await this.cli(args, timeoutMs)).stdout.trim();
  }

  /** A container's output so far, stdout and stderr together (busybox httpd -vv logs each client on stderr). */
  async logs(container: string): Promise<string> {
    const { stdout, stderr } = await this.cli(['logs', container], 10_000);
    return stdout + stderr;
  }

  private async cli(args: readonly string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
    try {
      return await run('docker', ['-H', `unix://${this.socket}`, ...args], { timeout: timeoutMs });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`docker ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
    }
  }

  /** Imports the busybox image (built once per test run by busyboxImageTar). */
  async importBusybox(): Promise<void> {
    await this.docker(['import', await busyboxImageTar(), BUSYBOX_IMAGE]);
  }

  /** Starts a detached container from the busybox image; resolves with its address on `network` (default: docker0's). */
  async runContainer(name: string, argv: readonly string[], network?: string): Promise<string> {
    await this.docker(['run', '-d', '--name', name, ...(network ? ['--network', network] : []), BUSYBOX_IMAGE, ...argv]);
    const field = network ? `{{(index .NetworkSettings.Networks "${network}").IPAddress}}` : '{{.NetworkSettings.IPAddress}}';
    return this.docker(['inspect', '-f', field, name]);
  }

  /** Runs a command in a container; rejects on a non-zero exit. */
  exec(container: string, argv: readonly string[], timeoutMs = 30_000): Promise<string> {
    return this.docker(['exec', container, ...argv], timeoutMs);
  }

  /** Stops dockerd and removes everything it created; safe to call twice, and after a failed start. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // Remove containers first: sleeping PID 1s ignore SIGTERM, and dockerd would wait for them on shutdown.
      const ids = await this.docker(['ps', '-aq'], 10_000).catch(() => '');
      if (ids) await this.docker(['rm', '-f', ...ids.split('\n')], 20_000).catch(() => undefined);
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 15_000))]);
      if (!stopped) this.child.kill('SIGKILL');
    }
    await removeDockerdLeftovers(this.dir);
  }
}

/** The cgroup parent of one dockerd's containers, named after its dir so leftovers can be found by name. */
function cgroupParent(dir: string): string {
  return dir.split('/').pop()!;
}

/**
 * Removes what a dockerd using `dir` may have left: every process whose command line names the dir (dockerd,
 * its containerd, the shims), the processes in its containers' cgroups and the cgroups themselves, the mounts
 * under the dir (deepest first, lazily, as its netns bind mounts may still be busy), then the dir.
 */
async function removeDockerdLeftovers(dir: string): Promise<void> {
  for (const pid of await pidsMentioning(dir)) kill(pid);
  await removeCgroups(cgroupParent(dir));
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((target) => target && (target === dir || target.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) await run('umount', ['-l', target]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

async function pidsMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Kills the processes in every cgroup named `name` (dockerd's --cgroup-parent; cgroup v1 has one per controller,
 * some below our own cgroup) and removes the cgroups, deepest first.
 */
async function removeCgroups(name: string): Promise<void> {
  const found: string[] = [];
  const search = async (path: string, depth: number): Promise<void> => {
    const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name === name) found.push(join(path, e.name));
      else if (depth > 0) await search(join(path, e.name), depth - 1);
    }
  };
  await search('/sys/fs/cgroup', 3);
  for (const root of found) {
    const dirs = await subdirs(root);
    for (const d of dirs) {
      const procs = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of procs.split('\n').filter(Boolean)) kill(Number(pid));
    }
  }
  for (const root of found) {
    for (const d of (await subdirs(root)).reverse()) {
      // A killed process leaves its cgroup a moment later.
      for (let i = 0; i < 50; i++) {
        if (await rmdir(d).then(() => true, (err: NodeJS.ErrnoException) => err.code === 'ENOENT')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/** A directory and all directories below it, parents first. */
async function subdirs(root: string): Promise<string[]> {
  const out = [root];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(...(await subdirs(join(root, e.name))));
  }
  return out;
}

/** Removes what dockerds (and images) of test runs that no longer exist left behind; their dirs name the run's PID. */
export async function cleanupStaleDockerds(): Promise<void> {
  for (const entry of await readdir(tmpdir())) {
    const match = new RegExp(`^(${DIR_PREFIX}|${IMAGE_PREFIX})(\\d+)-`).exec(entry);
    if (!match || alive(Number(match[2]))) continue;
    if (match[1] === DIR_PREFIX) await removeDockerdLeftovers(join(tmpdir(), entry));
    else await rm(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

let imageDir: Promise<string> | undefined;

/**
 * The busybox image as a tar for `docker import`, built once per test process and shared by all its dockerds:
 * static busybox with symlinks for the applets the tests use, and a page for httpd. removeBusyboxImage() deletes it.
 */
export async function busyboxImageTar(): Promise<string> {
  imageDir ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), `${IMAGE_PREFIX}${process.pid}-`));
    const root = join(dir, 'root');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'www'));
    const busybox = (await run('sh', ['-c', 'command -v busybox'])).stdout.trim();
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    await chmod(join(root, 'bin', 'busybox'), 0o755);
    for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
    await writeFile(join(root, 'www', 'index.html'), `${PAGE_BODY}\n`);
    await run('tar', ['-C', root, '-cf', join(dir, 'busybox.tar'), '.']);
    return dir;
  })();
  return join(await imageDir, 'busybox.tar');
}

export async function removeBusyboxImage(): Promise<void> {
  const dir = await imageDir?.catch(() => undefined);
  imageDir = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
}

/**
 * The dockerd options a host gets from flanneld's subnet file, exactly as contrib/systemd's docker drop-in passes
 * them: `mk-docker-opts -i` writes DOCKER_OPT_* variables, and the drop-in's ExecStart names them unquoted, so
 * systemd splits each value on whitespace.
 */
export async function flannelDockerOptions(bed: { exec(ns: string, argv: string[]): Promise<{ stdout: string }> }, ns: string, subnetFile: string): Promise<string[]> {
  const envFile = `${subnetFile}.docker_opts.env`;
  await bed.exec(ns, [process.execPath, MK_DOCKER_OPTS, '-f', subnetFile, '-d', envFile, '-i']);
  const vars = parseEnvFile(await readFile(envFile, 'utf8'));
  const dropIn = await readFile(join(packageRoot(), 'contrib', 'systemd', 'docker.service.d', '40-flannel.conf'), 'utf8');
  const execStart = dropIn.split('\n').filter((l) => /^ExecStart=./.test(l)).pop() ?? '';
  const names = [...execStart.matchAll(/\$(DOCKER_OPT_[A-Z]+)/g)].map((m) => m[1]);
  if (names.length === 0) throw new Error('the docker drop-in passes no $DOCKER_OPT_* variable');
  return names.flatMap((name) => (vars[name] ?? '').split(/\s+/).filter(Boolean));
}
