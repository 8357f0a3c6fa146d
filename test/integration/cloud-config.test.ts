import { execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FLANNELD, runFlanneld, type FlanneldRun } from '../../testbed/flanneld.js';
import { useTempDir } from '../helpers/fixtures.js';

const run = promisify(execFile);

const dir = useTempDir('cloudcfg');
let count = 0;

async function translate(text: string): Promise<FlanneldRun> {
  const file = dir.file(`cloud-config-${count++}.yml`);
  await writeFile(file, text);
  return runFlanneld(['cloud-config', file]);
}

/** `flanneld cloud-config -` with `text` on stdin. */
function translateStdin(text: string): Promise<FlanneldRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FLANNELD, 'cloud-config', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(text);
  });
}

function expectOneLineError(result: FlanneldRun, ...fragments: string[]) {
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^flanneld: /);
  for (const f of fragments) expect(lines[0]).toContain(f);
}

// The example from CoreOS's cloud-config documentation, with every key it documents.
const EVERY_KEY = `#cloud-config
hostname: node1
coreos:
  etcd2:
    advertise-client-urls: http://$public_ipv4:2379
  units:
    - name: flanneld.service
      command: start
  flannel:
    etcd_endpoints: http://198.18.0.254:2379,http://198.18.0.253:2379
    etcd_cafile: /etc/ssl/etcd/ca.pem
    etcd_certfile: /etc/ssl/etcd/client.pem
    etcd_keyfile: /etc/ssl/etcd/client-key.pem
    etcd_prefix: /coreos.com/network2
    ip_masq: true
    subnet_file: /run/flannel/subnet.env
    interface: eth1
    public_ip: 198.18.0.1
    etcd_username: flannel
    etcd_password: s3cret
`;

describe('flanneld cloud-config', () => {
  it('translates every documented key, in coreos-cloudinit order, ignoring the rest of the document', async () => {
    const result = await translate(EVERY_KEY);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toBe(
      [
        '[Service]',
        'Environment="FLANNELD_ETCD_ENDPOINTS=http://198.18.0.254:2379,http://198.18.0.253:2379"',
        'Environment="FLANNELD_ETCD_CAFILE=/etc/ssl/etcd/ca.pem"',
        'Environment="FLANNELD_ETCD_CERTFILE=/etc/ssl/etcd/client.pem"',
        'Environment="FLANNELD_ETCD_KEYFILE=/etc/ssl/etcd/client-key.pem"',
        'Environment="FLANNELD_ETCD_PREFIX=/coreos.com/network2"',
        'Environment="FLANNELD_IP_MASQ=true"',
        'Environment="FLANNELD_SUBNET_FILE=/run/flannel/subnet.env"',
        'Environment="FLANNELD_IFACE=eth1"',
        'Environment="FLANNELD_PUBLIC_IP=198.18.0.1"',
        'Environment="FLANNELD_ETCD_USERNAME=flannel"',
        'Environment="FLANNELD_ETCD_PASSWORD=s3cret"',
        '',
      ].join('\n'),
    );
  });

  it('the seed example: etcd_prefix becomes FLANNELD_ETCD_PREFIX', async () => {
    const result = await translate('#cloud-config\ncoreos:\n  flannel:\n    etcd_prefix: /coreos.com/network2\n');
    expect(result.stdout).toBe('[Service]\nEnvironment="FLANNELD_ETCD_PREFIX=/coreos.com/network2"\n');
  });

  it('reads stdin for "-", and CRLF files', async () => {
    const result = await translateStdin('#cloud-config\r\ncoreos:\r\n  flannel:\r\n    interface: eth1\r\n');
    expect(result).toMatchObject({ code: 0, stderr: '', stdout: '[Service]\nEnvironment="FLANNELD_IFACE=eth1"\n' });
  });

  it('keeps scalars as written: flow mappings, quoted values, YAML 1.1 booleans, numbers, anchors', async () => {
    const result = await translate(
      "#cloud-config\nbase: &pw '0755'\ncoreos: {flannel: {ip_masq: 'false', etcd_password: *pw, etcd_username: 1e3, interface: 198.18.0.1}}\n",
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      [
        '[Service]',
        'Environment="FLANNELD_IP_MASQ=false"',
        'Environment="FLANNELD_IFACE=198.18.0.1"',
        'Environment="FLANNELD_ETCD_USERNAME=1e3"',
        'Environment="FLANNELD_ETCD_PASSWORD=0755"',
        '',
      ].join('\n'),
    );
  });

  it('quotes spaces, double quotes, backslashes and % for systemd; $ and single quotes pass as they are', async () => {
    const result = await translate(
      `#cloud-config\ncoreos:\n  flannel:\n    etcd_password: 'p w "q" \\back\\ 100% $HOME it''s'\n`,
    );
    expect(result.stdout).toBe(`[Service]\nEnvironment="FLANNELD_ETCD_PASSWORD=p w \\"q\\" \\\\back\\\\ 100%% $HOME it's"\n`);
  });

  it.each([
    ['no header', 'coreos:\n  flannel:\n    interface: eth1\n', 'first line must be "#cloud-config"'],
    ['a script instead', '#!/bin/sh\necho hi\n', 'not a cloud-config'],
    ['an empty file', '', 'not a cloud-config'],
    ['invalid YAML', '#cloud-config\ncoreos:\n  flannel: [\n', 'invalid YAML'],
    ['a duplicate key', '#cloud-config\ncoreos:\n  flannel:\n    interface: a\n    interface: b\n', 'invalid YAML: Map keys must be unique at line 5'],
    ['two documents', '#cloud-config\ncoreos: {}\n---\ncoreos: {}\n', 'invalid YAML'],
    ['no coreos section', '#cloud-config\nhostname: x\n', 'no coreos.flannel section'],
    ['no flannel section', '#cloud-config\ncoreos:\n  units: []\n', 'no coreos.flannel section'],
    ['a top-level list', '#cloud-config\n- a\n', 'no coreos.flannel section'],
    ['coreos as a string', '#cloud-config\ncoreos: flannel\n', 'coreos is not a mapping'],
    ['flannel as a list', '#cloud-config\ncoreos:\n  flannel:\n    - interface: eth1\n', 'coreos.flannel is not a mapping'],
    ['an unknown key', '#cloud-config\ncoreos:\n  flannel:\n    iface: eth1\n    etcd_prefix: /x\n', 'unknown key coreos.flannel.iface'],
    ['a list value', '#cloud-config\ncoreos:\n  flannel:\n    etcd_endpoints: [http://a:2379]\n', 'coreos.flannel.etcd_endpoints must be a single value, not a list'],
    ['a mapping value', '#cloud-config\ncoreos:\n  flannel:\n    interface: {name: eth1}\n', 'coreos.flannel.interface must be a single value, not a mapping'],
    ['an empty value', '#cloud-config\ncoreos:\n  flannel:\n    interface:\n', 'coreos.flannel.interface has no value'],
    ['a multi-line value', '#cloud-config\ncoreos:\n  flannel:\n    etcd_password: |\n      two\n      lines\n', 'control character'],
    ['a bad ip_masq', '#cloud-config\ncoreos:\n  flannel:\n    ip_masq: maybe\n', 'coreos.flannel.ip_masq: invalid value "maybe" for ip_masq'],
  ])('%s is a one-line error naming the file, exit 1', async (_, text, fragment) => {
    const result = await translate(text);
    expectOneLineError(result, fragment, 'cloud-config-');
  });

  it('a missing file, a missing argument and an extra argument are one-line errors', async () => {
    expectOneLineError(await runFlanneld(['cloud-config', dir.file('nope.yml')]), 'cannot read cloud-config', 'ENOENT');
    expectOneLineError(await runFlanneld(['cloud-config']), 'usage: flanneld cloud-config');
    expectOneLineError(await runFlanneld(['cloud-config', 'a', 'b']), 'usage: flanneld cloud-config');
  });
});

// systemd-analyze (package systemd) is required, as CI installs it: a missing tool fails these tests.
describe('the drop-in under systemd-analyze verify', () => {

  /** Verifies a flanneld-like unit with `dropIn` as its 20-cloudinit.conf; returns what verify said about the drop-in. */
  async function verify(dropIn: string): Promise<string[]> {
    const unitDir = dir.file(`units-${count++}`);
    const unit = `ft-flanneld-${process.pid}.service`;
    await mkdir(join(unitDir, `${unit}.d`), { recursive: true });
    await writeFile(join(unitDir, unit), `[Unit]\nDescription=test\n[Service]\nType=notify\nExecStart=${process.execPath} ${FLANNELD}\n`);
    await writeFile(join(unitDir, `${unit}.d`, '20-cloudinit.conf'), dropIn);
    let stderr: string;
    try {
      stderr = (await run('systemd-analyze', ['verify', join(unitDir, unit)], { timeout: 30_000 })).stderr;
    } catch (err) {
      // verify exits non-zero when it warns; a command that did not run at all (not installed) is a failure.
      const e = err as { code?: unknown; stderr?: string };
      if (typeof e.code !== 'number') throw err;
      stderr = e.stderr ?? '';
    }
    return stderr.split('\n').filter((l) => l.includes('20-cloudinit.conf'));
  }

  it('accepts the drop-in for every key and for values full of quotes, backslashes, % and $', async () => {
    for (const text of [
      EVERY_KEY,
      `#cloud-config\ncoreos:\n  flannel:\n    etcd_password: 'p w "q" \\back\\ 100% %n $HOME it''s'\n    etcd_prefix: "/a b/\\"c\\""\n`,
    ]) {
      const result = await translate(text);
      expect(result.code).toBe(0);
      expect(await verify(result.stdout)).toEqual([]);
    }
  });

  it('(control) verify does report a drop-in line systemd cannot parse, so the check above means something', async () => {
    expect((await verify('[Service]\nEnvironment="FLANNELD_ETCD_PASSWORD=100%z"\n')).join('\n')).toContain('specifiers');
    expect((await verify('[Service]\nEnvironment="FLANNELD_ETCD_PASSWORD=a\\qb"\n')).join('\n')).toContain('Invalid syntax');
  });
});
