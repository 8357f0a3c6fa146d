import { afterEach, describe, expect, it } from 'vitest';
import { flanneldArgs, type FlanneldProcess, type LogMark } from '../../testbed/flanneld.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';

// Signals against a real daemon (alloc backend) and a real etcd, including an etcd that holds its connections open
// and answers nothing (SIGSTOP): shutdown must not wait on it.
const ALLOC = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';
const etcd = useEtcd();
const dir = useTempDir('signals');
const startFlanneld = useFlanneld();
let n = 0;

afterEach(() => etcd.freeze(false));

const network = () => etcd.network(ALLOC);

/** flanneld at debug level, which logs `etcd-request` as each etcd request goes out. */
function spawn(prefix: string, env: NodeJS.ProcessEnv = {}): FlanneldProcess {
  n++;
  const args = flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp: `198.18.9.${n}`, subnetFile: dir.file(`${n}.env`) });
  return startFlanneld(args, { env: { FLANNELD_LOG_LEVEL: 'debug', ...env } });
}

/** Waits until `d` has sent a request of its etcd `loop` after `mark`, which the frozen etcd will not answer. */
const requestInFlight = (d: FlanneldProcess, loop: string, mark: LogMark) => d.waitForEvent('etcd-request', { loop }, { after: mark });

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
    // The renewal is due 2 s after the lease was granted; once sent, it waits on an etcd that does not answer.
    await requestInFlight(d, 'renewal', d.mark());
    const { code, ms } = await timedStop(d, 'SIGTERM');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(d.events('shutdown', { signal: 'SIGTERM' }).length > 0).toBe(true);
  });

  it('SIGTERM exits 0 at once while startup waits on an unresponsive etcd', async () => {
    const prefix = await network();
    etcd.freeze(true);
    const d = spawn(prefix);
    await requestInFlight(d, 'startup', 0);
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
    expect(d.events('shutdown')[0]).toMatchObject({ signal: 'SIGHUP' });
    expect(Object.keys(await etcd.dump(`${prefix}/subnets/`))).toHaveLength(1);
  });
});
