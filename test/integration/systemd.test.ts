import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-info.js';
import { parseEnvFile } from '../../src/subnet/subnet-file.js';
import { MK_DOCKER_OPTS } from '../../testbed/built.js';
import { FLANNELD, flanneldArgs, type FlanneldProcess } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';

const run = promisify(execFile);
const CONTRIB = join(packageRoot(), 'contrib', 'systemd');

const tmp = useTempDir('systemd');

/** `Key=value` lines of a unit file, comments and section headers left out. */
function directives(text: string): string[] {
  return text.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
}

describe('contrib/systemd units', () => {
  it('flanneld.service: notify type, options.env, restart on failure, a stop timeout above flanneld\'s own', async () => {
    const unit = directives(await readFile(join(CONTRIB, 'flanneld.service'), 'utf8'));
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'EnvironmentFile=-/etc/flannel/options.env',
      'ExecStart=/usr/local/bin/flanneld',
      'Restart=on-failure',
      'RestartSec=5',
      'TimeoutStopSec=15',
    ]) {
      expect(unit).toContain(line);
    }
  });

  it('docker drop-in: ordered after flanneld, generates and reads the docker options', async () => {
    const dropIn = directives(await readFile(join(CONTRIB, 'docker.service.d', '40-flannel.conf'), 'utf8'));
    for (const line of [
      'Requires=flanneld.service',
      'After=flanneld.service',
      'ExecStartPre=/usr/local/bin/mk-docker-opts -d /run/flannel/docker_opts.env -i',
      'EnvironmentFile=-/run/flannel/docker_opts.env',
    ]) {
      expect(dropIn).toContain(line);
    }
    // dockerd gets every variable mk-docker-opts -i writes.
    const execStart = dropIn.filter((l) => l.startsWith('ExecStart=/'));
    expect(execStart).toHaveLength(1);
    for (const v of ['$DOCKER_OPT_BIP', '$DOCKER_OPT_MTU', '$DOCKER_OPT_IPMASQ']) expect(execStart[0]).toContain(v);
  });

  // systemd-analyze (package systemd) is required, as CI installs it: a missing tool fails these tests.
  describe('systemd-analyze verify', () => {
    let unitDir: string;

    /**
     * The units as shipped, in a scratch unit directory with their binaries pointed at executables that exist
     * here (wrappers around the built CLIs; a stub for dockerd), next to a minimal docker.service for the drop-in.
     */
    beforeAll(async () => {
      unitDir = tmp.file('units');
      const bin = tmp.file('bin');
      await mkdir(join(unitDir, 'docker.service.d'), { recursive: true });
      await mkdir(bin, { recursive: true });
      const wrappers: Record<string, string> = {
        flanneld: `exec ${process.execPath} ${FLANNELD} "$@"`,
        'mk-docker-opts': `exec ${process.execPath} ${MK_DOCKER_OPTS} "$@"`,
        dockerd: 'exit 0',
      };
      for (const [name, body] of Object.entries(wrappers)) {
        await writeFile(join(bin, name), `#!/bin/sh\n${body}\n`);
        await chmod(join(bin, name), 0o755);
      }
      const relocate = (text: string) => text.replaceAll('/usr/local/bin/', `${bin}/`).replaceAll('/usr/bin/dockerd', `${bin}/dockerd`);
      await writeFile(join(unitDir, 'flanneld.service'), relocate(await readFile(join(CONTRIB, 'flanneld.service'), 'utf8')));
      await writeFile(
        join(unitDir, 'docker.service.d', '40-flannel.conf'),
        relocate(await readFile(join(CONTRIB, 'docker.service.d', '40-flannel.conf'), 'utf8')),
      );
      await writeFile(join(unitDir, 'docker.service'), `[Unit]\nDescription=docker stand-in\n[Service]\nType=notify\nExecStart=${bin}/dockerd -H fd://\n`);
    });

    async function verify(...units: string[]): Promise<{ code: number; stderr: string }> {
      try {
        const { stderr } = await run('systemd-analyze', ['verify', '--man=no', ...units.map((u) => join(unitDir, u))], { timeout: 60_000 });
        return { code: 0, stderr };
      } catch (err) {
        const e = err as { code?: number; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : -1, stderr: e.stderr ?? String(err) };
      }
    }

    it('accepts flanneld.service, and docker.service with the drop-in, without a warning', async () => {
      expect(await verify('flanneld.service')).toEqual({ code: 0, stderr: '' });
      expect(await verify('docker.service')).toEqual({ code: 0, stderr: '' });
    });

    it('(control) verify does read the drop-in and warns about what is wrong in it', async () => {
      const path = join(unitDir, 'docker.service.d', '99-broken.conf');
      await writeFile(path, '[Service]\nExecStart=\nExecStart=/nonexistent/dockerd\nNotAKey=1\n');
      try {
        const result = await verify('docker.service');
        expect(result.stderr).toContain('99-broken.conf');
        expect(result.stderr).toContain('NotAKey');
        expect(result.stderr).toContain('Command /nonexistent/dockerd is not executable');
      } finally {
        await rm(path);
      }
    });
  });
});

describe('sd_notify readiness', () => {
  const etcd = useEtcd();
  const startFlanneld = useFlanneld();
  const sockets: ChildProcess[] = [];
  const ALLOC = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';

  afterAll(() => {
    for (const c of sockets) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  /** A unix datagram socket standing in for systemd's notify socket; returns its path and what it received. */
  async function notifySocket(name: string): Promise<{ path: string; received: () => string }> {
    const path = tmp.file(`${name}.sock`);
    const socat = spawn('socat', ['-u', `UNIX-RECV:${path}`, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    sockets.push(socat);
    let received = '';
    socat.stdout?.on('data', (d: Buffer) => (received += d.toString()));
    await waitFor(`socat listening on ${path}`, () => access(path).then(() => true), 10_000);
    return { path, received: () => received };
  }

  function start(prefix: string, subnetFile: string, env: NodeJS.ProcessEnv) {
    return startFlanneld(flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp: '198.18.3.1', subnetFile }), { env });
  }

  /** Reads etcd has served: flanneld waiting for its config reads it once a second, and nothing else runs here. */
  const etcdReads = () => etcd.metric('etcd_mvcc_range_total');

  const systemdEvents = (d: FlanneldProcess) => d.events().filter((e) => String(e.event).startsWith('sd-notify'));

  it('sends READY=1 (with MAINPID) only once the subnet file is written', async () => {
    const prefix = await etcd.network();
    const subnetFile = tmp.file('notify-subnet.env');
    const socket = await notifySocket('notify');
    const d = start(prefix, subnetFile, { NOTIFY_SOCKET: socket.path });
    // No network config yet: flanneld waits, and must not claim to be ready while it goes on polling for it.
    await d.waitForEvent('waiting-for-config');
    const reads = await etcdReads();
    await waitFor('flanneld to look for its config twice more', async () => (await etcdReads()) >= reads + 2, 10_000);
    expect(socket.received()).toBe('');
    await expect(access(subnetFile)).rejects.toThrow();

    await etcd.put(`${prefix}/config`, ALLOC);
    const message = await waitFor('READY=1 on the notify socket', async () => socket.received().includes('READY=1') && socket.received(), 20_000);
    // By the time systemd hears READY=1 the subnet file is complete: docker's mk-docker-opts can read it.
    const vars = parseEnvFile(await readFile(subnetFile, 'utf8'));
    expect(vars.FLANNEL_NETWORK).toBe('198.19.0.0/16');
    expect(vars.FLANNEL_SUBNET).toMatch(/^198\.19\.\d+\.1\/24$/);
    expect(message.split('\n')).toContain(`MAINPID=${d.child.pid}`);
    await d.waitForEvent('sd-notify-ready');
    expect(d.events('sd-notify-failed')).toEqual([]);
    expect(d.running).toBe(true);
    expect((await d.stop('SIGTERM')).code).toBe(0);
  });

  it('without NOTIFY_SOCKET nothing is sent and nothing is logged about systemd', async () => {
    const prefix = await etcd.network(ALLOC);
    // A 2 s lease TTL renews every second: a clock the daemon keeps itself, to wait on instead of a sleep.
    const env: NodeJS.ProcessEnv = { FLANNELD_SUBNET_LEASE_TTL: '2' };
    if (process.env.NOTIFY_SOCKET) env.NOTIFY_SOCKET = '';
    const d = start(prefix, tmp.file('nonotify-subnet.env'), env);
    await d.waitForEvent('subnet-file-written');
    await d.waitForEvent('lease-renewed', {}, 10_000);
    expect(systemdEvents(d)).toEqual([]);
    expect((await d.stop('SIGTERM')).code).toBe(0);
  });

  it('a notify socket nobody listens on is a warning, not a failure', async () => {
    const prefix = await etcd.network(ALLOC);
    const d = start(prefix, tmp.file('deadnotify-subnet.env'), { NOTIFY_SOCKET: tmp.file('nobody.sock') });
    const warning = await d.waitForEvent('sd-notify-failed');
    expect(warning.msg).toContain('cannot notify systemd');
    expect(d.running).toBe(true);
    expect((await d.stop('SIGTERM')).code).toBe(0);
  });
});
