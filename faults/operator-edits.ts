import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EtcdServer } from '../testbed/etcd.js';
import { sleep } from '../testbed/interrupt.js';
import { withLoopbackHosts } from './loopback-hosts.js';
import { run, type ScenarioResult } from './scenario.js';

const PREFIX = '/faults-edits/network';
const CONFIG = '{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}';

/** The hosts' keys, and two /24 keys neither holds (for garbage: writing over a host's key would move it). */
interface Keys {
  readonly own: string;
  readonly peer: string;
  readonly spare: readonly [string, string];
}

/** One operator mistake, what it does to etcd, and the line (event) flanneld must log for it exactly once. */
interface Edit {
  readonly name: string;
  readonly apply: (etcd: EtcdServer, keys: Keys) => Promise<void>;
  readonly event: string;
  readonly fields?: (keys: Keys) => Record<string, unknown>;
}

/** A /25 inside the /24 of `key`. */
const overlapping = (key: string) => key.replace(/\.0-24$/, '.128-25');

const EDITS: Edit[] = [
  { name: 'own_lease_deleted', apply: (etcd, k) => etcd.ctl(['del', `${PREFIX}/subnets/${k.own}`]).then(() => undefined), event: 'lease-lost' },
  {
    name: 'garbage_value',
    apply: (etcd, k) => etcd.put(`${PREFIX}/subnets/${k.spare[0]}`, '{"PublicIP": not json'),
    event: 'lease-value-invalid',
    fields: (k) => ({ key: `${PREFIX}/subnets/${k.spare[0]}` }),
  },
  {
    name: 'garbage_public_ip',
    apply: (etcd, k) => etcd.put(`${PREFIX}/subnets/${k.spare[1]}`, '{"PublicIP":"banana"}'),
    event: 'lease-value-invalid',
    fields: (k) => ({ key: `${PREFIX}/subnets/${k.spare[1]}` }),
  },
  {
    name: 'lease_outside_network',
    apply: (etcd) => etcd.put(`${PREFIX}/subnets/198.18.200.0-24`, '{"PublicIP":"198.18.8.200"}'),
    event: 'lease-ignored',
    fields: () => ({ reason: 'outside_network', key: `${PREFIX}/subnets/198.18.200.0-24`, conflict: '198.19.0.0/16' }),
  },
  {
    // The /25 inside the peer's /24: one line for the pair, naming both keys (from the peer's, the smaller key).
    name: 'overlapping_lease',
    apply: (etcd, k) => etcd.put(`${PREFIX}/subnets/${overlapping(k.peer)}`, '{"PublicIP":"198.18.8.201"}'),
    event: 'lease-ignored',
    fields: (k) => ({ reason: 'overlap', key: `${PREFIX}/subnets/${k.peer}`, conflict: `${PREFIX}/subnets/${overlapping(k.peer)}` }),
  },
  { name: 'config_deleted', apply: (etcd) => etcd.ctl(['del', `${PREFIX}/config`]).then(() => undefined), event: 'network-config-deleted' },
  { name: 'config_network_changed', apply: (etcd) => etcd.put(`${PREFIX}/config`, '{"Network":"198.19.0.0/17","Backend":{"Type":"alloc"}}'), event: 'network-config-changed' },
];

/**
 * 6. Operators editing etcd under a running cluster (two hosts, alloc backend): each edit above, one after the other.
 * Expected: no crash, one clear line (its event) per edit and no more, and a host whose lease was deleted (and that
 * has no subnet file) takes the same subnet back.
 */
export function operatorEdits(): Promise<ScenarioResult> {
  return run('operator-edits', (f) =>
    withLoopbackHosts(
      {
        tag: 'fedits',
        prefix: PREFIX,
        subnet: 8,
        env: { FLANNELD_RETRY_INTERVAL_MS: '300' },
        startEtcd: () => EtcdServer.start(),
        endpoints: (etcd) => etcd.endpoint,
      },
      async ({ dir, etcd, daemons, start }) => {
        await etcd.put(`${PREFIX}/config`, CONFIG);
        const [a, b] = [start(1), start(2)];
        await Promise.all([a.waitForEvent('subnet-file-written'), b.waitForEvent('subnet-file-written')]);
        const keyOf = async (publicIp: string) => {
          const leases = await etcd.dump(`${PREFIX}/subnets/`);
          return Object.entries(leases).find(([, v]) => v.includes(`"${publicIp}"`))![0].slice(`${PREFIX}/subnets/`.length);
        };
        const [ownKey, peerKey] = [await keyOf('198.18.8.1'), await keyOf('198.18.8.2')];
        const spare = ['198.19.201.0-24', '198.19.202.0-24', '198.19.203.0-24', '198.19.204.0-24'].filter((k) => k !== ownKey && k !== peerKey);
        const keys: Keys = { own: ownKey, peer: peerKey, spare: [spare[0], spare[1]] };
        // What a host started without a subnet file knows of its subnet: nothing on disk.
        await rm(join(dir, '1.env'));
        for (const edit of EDITS) {
          const fields = edit.fields?.(keys) ?? {};
          const mark = a.mark();
          await edit.apply(etcd, keys);
          await a.waitForEvent(edit.event, fields, { timeoutMs: 10_000, after: mark }).catch(() => undefined); // none: counted below
          await sleep(1_000); // room for a duplicate line to show up
          const lines = a.events(edit.event, fields, mark).length;
          f.set(edit.name, lines);
          f.expect(lines === 1, `${edit.name}: ${lines} ${edit.event} lines instead of 1`);
        }
        const retaken = a.events().filter((e) => e.event === 'lease-acquired').at(-1)?.subnet;
        f.set('same_subnet_back', retaken === ownKey.replace('-', '/'));
        f.expect(retaken === ownKey.replace('-', '/'), `the deleted lease ${ownKey} was replaced by ${retaken}`);
        f.expect(a.running && b.running, 'a flanneld exited');
        f.expect(!daemons.some((d) => d.events().some((e) => e.event === 'internal-error')), 'an internal error was logged');
      },
    ),
  );
}
