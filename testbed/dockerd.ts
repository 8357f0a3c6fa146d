import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { access, chmod, copyFile, mkdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/package-info.js';
import { MK_DOCKER_OPTS } from './built.js';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { waitFor } from './netns.js';
import { processes, terminate } from './proc.js';
import { makeTempDir, removeLeftovers } from './tempdir.js';

const run = promisify(execFile);

/** The image every test container runs: static busybox and its applets, no registry needed. */
const BUSYBOX_IMAGE = 'ft-busybox:local';
const APPLETS = ['sh', 'ping', 'nc', 'httpd', 'sleep', 'cat', 'echo', 'printf', 'ip', 'hostname'];
/** What the image's httpd serves at / (from /www/index.html). */
export const PAGE_BODY = 'served by flannel-ts test container';

/** The binaries of one docker install: dockerd, the client that came with it, and the containerd it runs on. */
interface DockerBinaries {
  readonly dockerd: string;
  readonly docker: string;
  readonly containerd: string;
}

let binaries: Promise<DockerBinaries> | undefined;

/**
 * dockerd from PATH, and the docker client of the same install: beside it, or in the bin/ beside its sbin/ (Debian's
 * docker.io has /usr/sbin/dockerd and /usr/bin/docker). Not the first `docker` on PATH, which may be another
 * version's client (a newer one refuses to talk to dockerd 20.10). containerd from PATH, as dockerd itself finds it.
 */
function dockerBinaries(): Promise<DockerBinaries> {
  binaries ??= (async () => {
    const which = async (name: string) => {
      const found = (await run('sh', ['-c', `command -v ${name}`]).catch(() => ({ stdout: '' }))).stdout.trim();
      if (!found) throw new Error(`${name} not found on PATH (install docker.io)`);
      return realpath(found);
    };
    const dockerd = await which('dockerd');
    const beside = [join(dirname(dockerd), 'docker'), join(dirname(dockerd), '..', 'bin', 'docker')];
    let docker: string | undefined;
    for (const candidate of beside) if (!docker && (await access(candidate).then(() => true, () => false))) docker = candidate;
    if (!docker) throw new Error(`no docker client beside ${dockerd} (looked for ${beside.join(' and ')}; install docker.io)`);
    return { dockerd, docker, containerd: await which('containerd') };
  })();
  return binaries;
}

/**
 * A containerd of one dockerd's own, with its root, state, sockets and config under `dir`/containerd. dockerd 20.10
 * would otherwise use the machine's containerd whenever /run/containerd/containerd.sock exists (a systemd host where
 * installing docker.io started containerd.service), and the test's containers and shims would live there, out of
 * reach of stop() and of the sweep of stale dirs. Runs in the host's network namespace, as dockerd's own would.
 */
async function startContainerd(ns: string, dir: string): Promise<ChildProcess> {
  const root = join(dir, 'containerd');
  await mkdir(root);
  const socket = join(root, 'containerd.sock');
  const config = [
    'version = 2',
    `root = ${JSON.stringify(join(root, 'root'))}`,
    `state = ${JSON.stringify(join(root, 'state'))}`,
    // dockerd needs none of Kubernetes' CRI, which would want /etc/cni and /opt/cni.
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(root, 'opt'))}`,
    '',
  ].join('\n');
  await writeFile(join(root, 'config.toml'), config);
  const logFd = openSync(join(root, 'containerd.log'), 'a');
  const child = spawn('nsenter', [`--net=/var/run/netns/${ns}`, (await dockerBinaries()).containerd, '--config', join(root, 'config.toml'), '--log-level', 'warn'], {
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  try {
    await waitFor(
      `containerd to listen on ${socket}`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new ProcessExited(`containerd exited (${child.exitCode ?? child.signalCode})`);
        return access(socket).then(() => true, () => false);
      },
      30_000,
      (err) => err instanceof ProcessExited,
    );
  } catch (err) {
    await terminate(child, 'SIGTERM', 5_000);
    const log = await readFile(join(root, 'containerd.log'), 'utf8').catch(() => '');
    throw new Error(`${(err as Error).message}:\n${log.slice(-3000)}`);
  }
  return child;
}

class ProcessExited extends Error {}

/**
 * A real dockerd (Debian's docker.io) inside a test host's network namespace, as real-clients.md describes:
 * entered with nsenter (not `ip netns exec`, which remounts /sys and hides the cgroup mounts), with its own
 * data-root, exec-root, socket, pidfile, config file (the trust key it writes included), cgroup parent and
 * containerd under one temp dir, on the vfs driver.
 *
 * Everything it leaves is found again from that dir's path (`ft-<test pid>-dockerd-...`), so stop() — and, after a
 * crashed run, the next run's sweep of stale temp dirs — removes all of it (removeLeftovers): containers, containerd
 * and its shims, the cgroups of the containers, and the netns bind mounts under exec-root.
 */
export class Dockerd {
  private child: ChildProcess | undefined;
  private containerd: ChildProcess | undefined;
  private client = 'docker';

  private constructor(
    readonly ns: string,
    readonly dir: string,
  ) {}

  get socket(): string {
    return join(this.dir, 'sock');
  }

  /** The address of this dockerd's own containerd. */
  get containerdSocket(): string {
    return join(this.dir, 'containerd', 'containerd.sock');
  }

  /**
   * Starts a containerd of its own, then dockerd in namespace `ns` with `args` appended (the flannel options), and
   * waits until it answers.
   */
  static async start(ns: string, args: readonly string[]): Promise<Dockerd> {
    const { dockerd: binary, docker } = await dockerBinaries();
    const dir = await makeTempDir('dockerd');
    const dockerd = new Dockerd(ns, dir);
    dockerd.client = docker;
    // Not the machine's /etc/docker/daemon.json, and not its /etc/docker/key.json either.
    await writeFile(join(dir, 'daemon.json'), `${JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') })}\n`);
    try {
      dockerd.containerd = await startContainerd(ns, dir);
    } catch (err) {
      await dockerd.stop();
      throw err;
    }
    const logFd = openSync(join(dir, 'dockerd.log'), 'a');
    const argv = [
      `--net=/var/run/netns/${ns}`, binary,
      '--config-file', join(dir, 'daemon.json'),
      '--containerd', dockerd.containerdSocket,
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
    dockerd.child = child;
    closeSync(logFd);
    try {
      await waitFor(
        'dockerd to answer',
        async () => {
          if (child.exitCode !== null || child.signalCode !== null) throw new ProcessExited(`dockerd exited (${child.exitCode ?? child.signalCode})`);
          return dockerd.docker(['version'], 5_000).then(() => true, () => false);
        },
        60_000,
        (err) => err instanceof ProcessExited,
      );
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
      return await run(this.client, ['-H', `unix://${this.socket}`, ...args], { timeout: timeoutMs });
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

  /**
   * The containerd address the shim of a container was started with: which containerd runs it. Undefined when no
   * shim runs it.
   */
  async shimAddress(container: string): Promise<string | undefined> {
    const id = await this.docker(['inspect', '-f', '{{.Id}}', container]);
    const shim = (await processes()).find(({ argv }) => argv[0]?.includes('containerd-shim') && argv[argv.indexOf('-id') + 1] === id);
    return shim && shim.argv[shim.argv.indexOf('-address') + 1];
  }

  /**
   * Stops dockerd, then its containerd, and removes everything they created (shims, containers, cgroups, mounts,
   * the dir); safe to call twice, and after a failed start.
   */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Remove containers first: sleeping PID 1s ignore SIGTERM, and dockerd would wait for them on shutdown.
      const ids = await this.docker(['ps', '-aq'], 10_000).catch(() => '');
      if (ids) await this.docker(['rm', '-f', ...ids.split('\n')], 20_000).catch(() => undefined);
      await terminate(child, 'SIGTERM', 15_000);
    }
    if (this.containerd) await terminate(this.containerd, 'SIGTERM', 10_000);
    // The shims of containers that outlived dockerd, and anything else naming the dir.
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
async function busyboxImageTar(): Promise<string> {
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
