import { beforeAll, describe, expect, it } from 'vitest';
import { etcdOnSwitch } from '../../testbed/etcd.js';
import { flanneldArgs } from '../../testbed/flanneld.js';
import { useEtcd, useFlanneld, useTempDir, useTestbed } from '../helpers/fixtures.js';

// glog's -v on a real daemon (alloc backend, real etcd). The daemon runs in a host namespace of a test bed: even the
// alloc backend installs the FLANNEL-FWD chain, which must land there, not on this machine.
const ALLOC = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';
const bed = useTestbed('verb');
const etcd = useEtcd(etcdOnSwitch(bed));
const dir = useTempDir('verbosity');
const startFlanneld = useFlanneld();
/** pino's number for the debug level, as it appears in each JSON line's `level`. */
const DEBUG = 20;
let host: string;

beforeAll(async () => {
  host = await bed.addHost('h1', '198.18.0.1');
});

/**
 * Starts flanneld with `extra` flags and `env`, the log level pinned to info (so the machine's LOG_LEVEL cannot
 * decide), and returns once both etcd watches have delivered an event that only a running watch sees (a removal
 * after an addition, a restore after a change): by then their watch-started lines, when logged, are out.
 */
async function runUntilWatching(name: string, extra: string[], env: NodeJS.ProcessEnv = {}) {
  const prefix = await etcd.network(ALLOC);
  const args = flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'eth0', subnetFile: dir.file(`${name}.env`) });
  const d = startFlanneld([...args, ...extra], { env: { FLANNELD_LOG_LEVEL: 'info', ...env }, netns: host });
  await d.waitForEvent('subnet-file-written');
  const peer = `${prefix}/subnets/198.19.250.0-24`;
  await etcd.put(peer, '{"PublicIP":"198.18.0.9","BackendType":"alloc"}');
  await d.waitForEvent('peer-added', { subnet: '198.19.250.0/24' });
  await etcd.ctl(['del', peer]);
  await d.waitForEvent('peer-removed', { subnet: '198.19.250.0/24' });
  await etcd.put(`${prefix}/config`, ALLOC.replace('{', '{"SubnetLen":25,'));
  await d.waitForEvent('network-config-changed');
  await etcd.put(`${prefix}/config`, ALLOC);
  await d.waitForEvent('network-config-restored');
  return d;
}

describe('-v raises the log level to debug', () => {
  it('without -v, no debug line is logged', async () => {
    const d = await runUntilWatching('quiet', []);
    expect(d.events().filter((e) => e.level === DEBUG)).toEqual([]);
    expect(d.events('watch-started')).toEqual([]);
  });

  for (const [how, extra, env] of [['-v=2', ['-v=2'], {}], ['FLANNELD_V=2', [], { FLANNELD_V: '2' }]] as const) {
    it(`with ${how}, the etcd watches log where they resume at debug level`, async () => {
      const d = await runUntilWatching(how.replace(/\W/g, '_'), [...extra], env);
      expect(d.events('watch-started', { loop: 'watch' })).toEqual([expect.objectContaining({ level: DEBUG, revision: expect.stringMatching(/^\d+$/) })]);
      expect(d.events('watch-started', { loop: 'config-watch' })).toEqual([expect.objectContaining({ level: DEBUG })]);
      // Info lines are still there: -v adds, it does not replace.
      expect(d.events('subnet-file-written')).toHaveLength(1);
    });
  }
});
