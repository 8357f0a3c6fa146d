import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/subnet/subnet-file.js';
import { freePort } from '../../testbed/etcd.js';
import { flanneldArgs, runFlanneld, type FlanneldRun } from '../../testbed/flanneld.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';

const etcd = useEtcd();
const dir = useTempDir('leasescmd');
const startFlanneld = useFlanneld();

/** Grants an etcd lease and returns its id in hex, as etcdctl takes it. */
async function grant(ttlSeconds: number): Promise<string> {
  const out = await etcd.ctl(['lease', 'grant', String(ttlSeconds)]);
  return /lease ([0-9a-f]+) granted/.exec(out)![1];
}

function leases(prefix: string, extra: string[] = []): Promise<FlanneldRun> {
  return runFlanneld(['leases', ...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix }), ...extra]);
}

/** The table as rows of cells (columns are separated by runs of spaces; no cell contains two spaces). */
function cells(stdout: string): string[][] {
  return stdout.trimEnd().split('\n').map((l) => l.split(/ {2,}/));
}

function expectIsoNear(text: string, secondsFromNow: number, toleranceSeconds = 30) {
  expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  expect(Math.abs(Date.parse(text) - (Date.now() + secondsFromNow * 1000))).toBeLessThan(toleranceSeconds * 1000);
}

describe('flanneld leases', () => {
  it('lists leases, reservations and flannel-written leases as a table ordered by subnet', async () => {
    const prefix = await etcd.network();
    const hour = await grant(3600);
    const day = await grant(86400);
    await etcd.ctl(['put', `${prefix}/subnets/198.19.12.0-24`, '{"PublicIP":"198.18.0.12","BackendType":"udp"}', `--lease=${day}`]);
    // flannel's own udp backend writes only PublicIP.
    await etcd.ctl(['put', `${prefix}/subnets/198.19.3.0-24`, '{"PublicIP":"198.18.0.3"}', `--lease=${hour}`]);
    // A reservation: no etcd lease, never expires.
    await etcd.put(`${prefix}/subnets/198.19.100.0-24`, '{"PublicIP":"198.18.0.100","BackendType":"alloc"}');
    // Skipped: not a lease value, and not a subnet key.
    await etcd.put(`${prefix}/subnets/198.19.7.0-24`, 'not json');
    await etcd.put(`${prefix}/subnets/junk`, '{"PublicIP":"198.18.0.9"}');
    // Another prefix's lease is not listed.
    await etcd.put(`${prefix}2/subnets/198.19.9.0-24`, '{"PublicIP":"198.18.0.99"}');

    const result = await leases(prefix);
    expect(result.code).toBe(0);
    const rows = cells(result.stdout);
    expect(rows[0]).toEqual(['SUBNET', 'PUBLIC IP', 'BACKEND', 'EXPIRES']);
    expect(rows.slice(1).map((r) => r.slice(0, 3))).toEqual([
      ['198.19.3.0/24', '198.18.0.3', '-'],
      ['198.19.12.0/24', '198.18.0.12', 'udp'],
      ['198.19.100.0/24', '198.18.0.100', 'alloc'],
    ]);
    expectIsoNear(rows[1][3], 3600);
    expectIsoNear(rows[2][3], 86400);
    expect(rows[3][3]).toBe('never');
    // Columns line up: every row has its cells at the header's offsets.
    const lines = result.stdout.trimEnd().split('\n');
    for (const heading of ['PUBLIC IP', 'BACKEND', 'EXPIRES']) {
      const at = lines[0].indexOf(heading);
      for (const line of lines.slice(1)) expect(line[at - 1]).toBe(' ');
      for (const line of lines.slice(1)) expect(line[at]).not.toBe(' ');
    }
    // The bad value is warned about (as the daemon does), the table is still printed.
    expect(result.stderr).toContain('198.19.7.0-24');
  });

  it('shows the lease a running flanneld holds, with its 24 h expiry', async () => {
    const prefix = await etcd.network('{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');
    const subnetFile = dir.file('daemon.env');
    const daemon = startFlanneld(flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp: '198.18.2.1', subnetFile }));
    await daemon.waitForEvent('subnet-file-written');
    const subnet = parseEnvFile(await readFile(subnetFile, 'utf8')).FLANNEL_SUBNET.replace('.1/24', '.0/24');
    // Flags from the environment work too, like for the daemon.
    const result = await runFlanneld(['leases'], { env: { FLANNELD_ETCD_ENDPOINTS: etcd.endpoint, FLANNELD_ETCD_PREFIX: prefix } });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const rows = cells(result.stdout);
    expect(rows).toHaveLength(2);
    expect(rows[1].slice(0, 3)).toEqual([subnet, '198.18.2.1', 'alloc']);
    expectIsoNear(rows[1][3], 86400);
  });

  it('an empty prefix prints the header and says there are no leases', async () => {
    const prefix = await etcd.network();
    const result = await leases(prefix);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('SUBNET   PUBLIC IP   BACKEND   EXPIRES\n');
    expect(result.stderr).toBe(`no leases under ${prefix}/subnets/\n`);
  });

  it('an unreachable etcd is a one-line error naming the endpoint, exit 1', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const result = await runFlanneld(['leases', ...flanneldArgs({ etcdEndpoints: endpoint })]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(endpoint);
  });

  it('an extra argument or a bad flag is a one-line error', async () => {
    for (const args of [['leases', 'extra'], ['leases', '--etcd-prefx', '/x']]) {
      const result = await runFlanneld(args);
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
