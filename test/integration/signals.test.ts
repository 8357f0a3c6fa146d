import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdServer } from '../../testbed/etcd.js';
import { FlanneldProcess } from '../../testbed/flanneld.js';

// Signals against a real daemon (alloc backend) and a real etcd, including an etcd that holds its connections open
// and answers nothing (SIGSTOP): shutdown must not wait on it.
const ALLOC = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';
let etcd: EtcdServer;
let dir: string;
let n = 0;
const daemons: FlanneldProcess[] = [];

beforeAll(async () => {
  etcd = await EtcdServer.start();
  dir = await mkdtemp(join(tmpdir(), 'ft-signals-'));
});
afterEach(async () => {
  etcd.freeze(false);
  await Promise.all(daemons.splice(0).map((d) => d.stop('SIGKILL').catch(() => undefined)));
});
afterAll(async () => {
  await etcd?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function network(): Promise<string> {
  const prefix = `/sig${process.pid}-${n++}/network`;
  await etcd.put(`${prefix}/config`, ALLOC);
  return prefix;
}

function spawn(prefix: string, env: NodeJS.ProcessEnv = {}): FlanneldProcess {
  const d = new FlanneldProcess(
    ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, '--iface', 'lo', '--public-ip', `198.18.9.${n}`, '--subnet-file', join(dir, `${n}.env`)],
    { env },
  );
  daemons.push(d);
  return d;
}

/** Sends `signal` and resolves with the exit code and how long the exit took. */
async function timedStop(d: FlanneldProcess, signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
  const sent = Date.now();
  const { code } = await d.stop(signal);
  return { code, ms: Date.now() - sent };
}

describe('signals', () => {
  it('SIGTERM exits 0 within a few seconds while etcd is unresponsive, with a renewal and the watches in flight', async () => {
    const d = spawn(await network(), { FLANNELD_SUBNET_LEASE_TTL: '4', FLANNELD_RETRY_INTERVAL_MS: '500' });
    await d.waitForEvent('subnet-file-written');
    etcd.freeze(true);
    // The renewal is due 2 s after the lease was granted; it now waits on an etcd that does not answer.
    await new Promise((r) => setTimeout(r, 3_000));
    const { code, ms } = await timedStop(d, 'SIGTERM');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(d.events().some((e) => e.event === 'shutdown' && e.signal === 'SIGTERM')).toBe(true);
  });

  it('SIGTERM exits 0 at once while startup waits on an unresponsive etcd', async () => {
    const prefix = await network();
    etcd.freeze(true);
    const d = spawn(prefix);
    await new Promise((r) => setTimeout(r, 1_500));
    const { code, ms } = await timedStop(d, 'SIGTERM');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
  });

  it('SIGHUP is logged and handled like SIGTERM: exit 0, the lease kept for the next start', async () => {
    const prefix = await network();
    const d = spawn(prefix);
    await d.waitForEvent('subnet-file-written');
    const { code } = await timedStop(d, 'SIGHUP');
    expect(code).toBe(0);
    expect(d.events().find((e) => e.event === 'shutdown')).toMatchObject({ signal: 'SIGHUP' });
    expect(Object.keys(await etcd.dump(`${prefix}/subnets/`))).toHaveLength(1);
  });
});
