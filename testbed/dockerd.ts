import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/package-info.js';
import { MK_DOCKER_OPTS } from './built.js';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { makeTempDir, removeLeftovers } from './tempdir.js';

const run = promisify(execFile);

/** The image every test container runs: static busybox and its applets, no registry needed. */
export const BUSYBOX_IMAGE = 'ft-busybox:local';
const APPLETS = ['sh', 'ping', 'nc', 'httpd', 'sleep', 'cat', 'echo', 'printf', 'ip', 'hostname'];
/** What the image's httpd serves at / (from /www/index.html). */
export const PAGE_BODY = 'served by flannel-ts test container';

/**
 * A real dockerd (Debian's docker.io) inside a test host's network namespace, as real-clients.md describes:
 * entered with nsenter (not `ip netns exec`, which remounts /sys and hides the cgroup mounts), with its own
 * data-root, exec-root, socket, pidfile, config file and cgroup parent under one temp dir, on the vfs driver.
 *
 * Everything it leaves is found again from that dir's path (`ft-<test pid>-dockerd-...`), so stop() — and, after a
 * crashed run, the next run's sweep of stale temp dirs — removes all of it (removeLeftovers): containers, containerd
 * and its shims, the cgroups of the containers, and the netns bind mounts under exec-root.
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
    const dir = await makeTempDir('dockerd');
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
    await removeLeftovers(this.dir);
  }
}

/** The cgroup parent of one dockerd's containers, named after its dir so that removeLeftovers finds them. */
function cgroupParent(dir: string): string {
  return dir.split('/').pop()!;
}

let imageDir: Promise<string> | undefined;

/**
 * The busybox image as a tar for `docker import`, built once per test process and shared by all its dockerds:
 * static busybox with symlinks for the applets the tests use, and a page for httpd. removeBusyboxImage() deletes it.
 */
export async function busyboxImageTar(): Promise<string> {
  imageDir ??= (async () => {
    const dir = await makeTempDir('busybox');
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
