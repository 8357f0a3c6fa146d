import { execFileSync } from 'node:child_process';
import { chmod, mkdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../testbed/etcd.js';
import { flanneldArgs, runFlanneld } from '../../testbed/flanneld.js';
import { waitFor } from '../../testbed/netns.js';
import { OverlayCluster, type OverlayHost } from '../../testbed/overlay.js';
import { useTempDir } from '../helpers/fixtures.js';

const which = (name: string) => execFileSync('sh', ['-c', `command -v ${name}`]).toString().trim();
const RESYNC_SECONDS = 1;

const dir = useTempDir('iptfault');
let cluster: OverlayCluster;

beforeAll(async () => {
  cluster = await OverlayCluster.create('iptfault', dir.path, '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}');
});

afterAll(async () => {
  await cluster?.cleanup();
});

/**
 * Host N of its own for one test, running flanneld with a PATH of its own (`bin`): `ip` (to enter the namespace) and
 * the tools named; a test adds or replaces the iptables binaries there.
 */
async function hostWith(n: number, tools: string[]): Promise<{ host: OverlayHost; bin: string }> {
  const bin = dir.file(`bin-h${n}`);
  await mkdir(bin);
  for (const tool of ['ip', ...tools]) await symlink(which(tool), join(bin, tool));
  // Debug level for the iptables-resynced events that say each resync is done.
  const host = await cluster.addHost(`h${n}`, n, { PATH: bin, FLANNELD_IPTABLES_RESYNC: String(RESYNC_SECONDS), FLANNELD_LOG_LEVEL: 'debug' });
  await host.daemon.waitForEvent('subnet-file-written');
  return { host, bin };
}

/**
 * Waits until the daemon has finished `n` more iptables resyncs (each retries what failed, or checks every rule):
 * whatever those resyncs had to say is logged by then. Resolves with the chains still failing after the last one.
 */
async function afterResyncs(host: OverlayHost, n: number): Promise<unknown> {
  const mark = host.daemon.mark();
  const resyncs = await waitFor(`${n} iptables resyncs`, async () => {
    const done = host.daemon.events('iptables-resynced', {}, mark);
    return done.length >= n && done;
  });
  return resyncs[n - 1].chains;
}

async function forwardRules(host: OverlayHost): Promise<string[]> {
  const { stdout } = await cluster.bed.exec(host.ns, ['iptables-save', '-t', 'filter']);
  return stdout.split('\n').filter((l) => l.startsWith('-A') && l.includes('FLANNEL-FWD'));
}

describe('iptables faults are reported once per change', () => {
  it('--ip-masq without iptables is one line and exit 1, before etcd is touched', async () => {
    const started = Date.now();
    // Nothing listens on this port; a flanneld that went to etcd first would wait there for a minute.
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const result = await runFlanneld(['--ip-masq', ...flanneldArgs({ etcdEndpoints: endpoint, subnetFile: dir.file('none.env') })], {
      env: { PATH: '/nonexistent', FLANNELD_ETCD_STARTUP_TIMEOUT_MS: '60000' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('flanneld: iptables not found on PATH; --ip-masq needs it (install the iptables package)\n');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('forward rules without iptables: one error, the daemon runs on, and one recovery line once iptables appears', async () => {
    const { host, bin } = await hostWith(1, []);
    const failed = await host.daemon.waitForEvent('iptables-failed', {}, 15_000);
    expect(failed).toMatchObject({ level: 50, chains: ['FLANNEL-FWD'] });
    expect(failed.msg).toMatch(/^iptables rules not in place \(FLANNEL-FWD: iptables(-restore)? not found on PATH \(install the iptables package\)\); retrying every 1 s$/);
    expect(await afterResyncs(host, 3)).toEqual(['FLANNEL-FWD']);
    expect(host.daemon.events('iptables-failed')).toHaveLength(1);

    for (const name of ['iptables', 'iptables-restore']) await symlink(which(name), join(bin, name));
    await host.daemon.waitForEvent('iptables-recovered', {}, 10_000);
    expect(await forwardRules(host)).toHaveLength(3);
    expect(await afterResyncs(host, 2)).toEqual([]);
    expect(host.daemon.events('iptables-recovered')).toHaveLength(1);
    expect(host.daemon.events('iptables-failed')).toHaveLength(1);
  });

  it('a failing iptables-restore is one error naming the chain and quoting it, then one recovery line', async () => {
    const { host, bin } = await hostWith(2, ['iptables', 'iptables-restore']);
    await host.daemon.waitForEvent('iptables-applied');
    expect(await forwardRules(host)).toHaveLength(3);
    const restore = join(bin, 'iptables-restore');
    await unlink(restore);
    await writeFile(restore, '#!/bin/sh\necho "iptables-restore: refused by the test" >&2\nexit 1\n');
    await chmod(restore, 0o755);
    const [, accept] = await forwardRules(host);
    await cluster.bed.exec(host.ns, ['sh', '-c', `iptables -t filter ${accept.replace('-A', '-D')}`]);

    const failed = await host.daemon.waitForEvent('iptables-failed', {}, 15_000);
    expect(failed.error).toBe('FLANNEL-FWD: iptables-restore failed writing FLANNEL-FWD (-t filter): iptables-restore: refused by the test');
    expect(await afterResyncs(host, 3)).toEqual(['FLANNEL-FWD']);
    expect(host.daemon.events('iptables-failed')).toHaveLength(1);
    expect(host.daemon.events('iptables-rule-missing')).toHaveLength(1);

    await unlink(restore);
    await symlink(which('iptables-restore'), restore);
    await host.daemon.waitForEvent('iptables-recovered', {}, 10_000);
    expect(await forwardRules(host)).toHaveLength(3);
    expect(host.daemon.events('iptables-recovered')).toHaveLength(1);
    expect(host.daemon.running).toBe(true);
  });
});
