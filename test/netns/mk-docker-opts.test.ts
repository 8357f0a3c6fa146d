import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { MK_DOCKER_OPTS } from '../../testbed/built.js';
import { useTempDir, useTestbed } from '../helpers/fixtures.js';

const execFileP = promisify(execFile);

const SUBNET_ENV = 'FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.5.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const dir = useTempDir('mkdocker');
let count = 0;

/** Runs the CLI (optionally inside a namespace); env has no DOCKER_OPTS unless given. */
async function mk(args: string[], opts: { env?: Record<string, string>; netns?: string } = {}): Promise<Run> {
  const env = { ...process.env, ...opts.env };
  if (!opts.env || !('DOCKER_OPTS' in opts.env)) delete env.DOCKER_OPTS;
  const argv = opts.netns ? ['ip', ['netns', 'exec', opts.netns, process.execPath, MK_DOCKER_OPTS, ...args]] as const : [process.execPath, [MK_DOCKER_OPTS, ...args]] as const;
  try {
    const { stdout, stderr } = await execFileP(argv[0], [...argv[1]], { env, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function subnetFile(text = SUBNET_ENV): Promise<string> {
  const path = dir.file(`subnet-${count++}.env`);
  await writeFile(path, text);
  return path;
}

/** Writes a subnet file, runs the CLI with `-f` and `-d` in the temp dir plus `args`, returns the output file. */
async function generate(args: string[], opts: { env?: Record<string, string>; subnet?: string; netns?: string } = {}) {
  const f = await subnetFile(opts.subnet);
  const d = dir.file(`docker-${count++}.env`);
  const run = await mk(['-f', f, '-d', d, ...args], opts);
  const out = await readFile(d, 'utf8').catch(() => undefined);
  return { run, out, d };
}

describe('mk-docker-opts output', () => {
  it('writes individual and combined variables, alphabetically, when neither -i nor -c is given', async () => {
    const { run, out } = await generate([]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(out).toBe(
      [
        'DOCKER_OPT_BIP="--bip=198.19.5.1/24"',
        'DOCKER_OPT_IPMASQ="--ip-masq=false"',
        'DOCKER_OPT_MTU="--mtu=1472"',
        'DOCKER_OPTS=" --bip=198.19.5.1/24 --ip-masq=false --mtu=1472"',
        '',
      ].join('\n'),
    );
  });

  it('tells docker to masquerade when flannel does not (FLANNEL_IPMASQ=false)', async () => {
    const { out } = await generate(['-i'], { subnet: SUBNET_ENV.replace('IPMASQ=true', 'IPMASQ=false') });
    expect(out).toBe('DOCKER_OPT_BIP="--bip=198.19.5.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\n');
  });

  it('-i writes only the individual variables, -c only the combined one', async () => {
    expect((await generate(['-i'])).out).not.toContain('DOCKER_OPTS=');
    expect((await generate(['-c'])).out).toBe('DOCKER_OPTS=" --bip=198.19.5.1/24 --ip-masq=false --mtu=1472"\n');
    // Clustered like getopts: -ic is both.
    expect((await generate(['-ic'])).out?.split('\n').filter(Boolean)).toHaveLength(4);
  });

  it('-m leaves out --ip-masq (and then does not need FLANNEL_IPMASQ)', async () => {
    expect((await generate(['-m'])).out).toBe(
      'DOCKER_OPT_BIP="--bip=198.19.5.1/24"\nDOCKER_OPT_MTU="--mtu=1472"\nDOCKER_OPTS=" --bip=198.19.5.1/24 --mtu=1472"\n',
    );
    const { run, out } = await generate(['-m', '-c'], { subnet: 'FLANNEL_SUBNET=198.19.5.1/24\nFLANNEL_MTU=1472\n' });
    expect(run.code).toBe(0);
    expect(out).toBe('DOCKER_OPTS=" --bip=198.19.5.1/24 --mtu=1472"\n');
  });

  it('-k names the combined variable and starts from its value in the environment', async () => {
    const { out } = await generate(['-k', 'DOCKER_NETWORK_OPTIONS', '-c'], { env: { DOCKER_NETWORK_OPTIONS: '--log-level=warn' } });
    expect(out).toBe('DOCKER_NETWORK_OPTIONS="--log-level=warn --bip=198.19.5.1/24 --ip-masq=false --mtu=1472"\n');
    // Attached option argument, as getopts allows.
    expect((await generate(['-kFOO', '-c'])).out).toMatch(/^FOO=" --bip=/);
  });

  it('keeps an existing DOCKER_OPTS with quotes, backslashes and $ readable by a shell', async () => {
    const existing = `--label "a b" --x='\\y' $HOME`;
    const { out, d } = await generate(['-c'], { env: { DOCKER_OPTS: existing } });
    expect(out).toContain('DOCKER_OPTS=');
    const { stdout } = await execFileP('sh', ['-c', `. "${d}"; printf %s "$DOCKER_OPTS"`]);
    expect(stdout).toBe(`${existing} --bip=198.19.5.1/24 --ip-masq=false --mtu=1472`);
  });

  it('accepts quoted values in the subnet file and replaces an existing output file', async () => {
    const f = await subnetFile('FLANNEL_SUBNET="198.19.7.1/24"\nFLANNEL_MTU="1450"\nFLANNEL_IPMASQ="false"\n');
    const d = dir.file('replace.env');
    await writeFile(d, 'OLD=1\n');
    expect((await mk(['-f', f, '-d', d, '-i'])).code).toBe(0);
    expect(await readFile(d, 'utf8')).toBe('DOCKER_OPT_BIP="--bip=198.19.7.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1450"\n');
    expect((await stat(d)).mode & 0o777).toBe(0o644);
  });
});

describe('mk-docker-opts errors', () => {
  const oneLine = (run: Run) => {
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe('');
  };

  it('a missing subnet file is one line naming it, exit 1, nothing written', async () => {
    const d = dir.file('never.env');
    const run = await mk(['-f', dir.file('missing.env'), '-d', d]);
    oneLine(run);
    expect(run.stderr).toContain('missing.env');
    await expect(stat(d)).rejects.toThrow();
  });

  it.each([
    ['no FLANNEL_SUBNET', 'FLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n', 'no FLANNEL_SUBNET'],
    ['a bad FLANNEL_SUBNET', 'FLANNEL_SUBNET=198.19.5/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n', 'FLANNEL_SUBNET=198.19.5/24'],
    ['no FLANNEL_MTU', 'FLANNEL_SUBNET=198.19.5.1/24\nFLANNEL_IPMASQ=false\n', 'no FLANNEL_MTU'],
    ['a bad FLANNEL_MTU', 'FLANNEL_SUBNET=198.19.5.1/24\nFLANNEL_MTU=big\nFLANNEL_IPMASQ=false\n', 'FLANNEL_MTU=big'],
    ['an empty file', '', 'no FLANNEL_SUBNET'],
    ['binary garbage', '\u0000\u0001\u00ff\n', 'no FLANNEL_SUBNET'],
  ])('a subnet file with %s is one line, exit 1', async (_, text, message) => {
    const { run, out } = await generate([], { subnet: text });
    oneLine(run);
    expect(run.stderr).toContain('malformed');
    expect(run.stderr).toContain(message);
    expect(out).toBeUndefined();
  });

  it('an FLANNEL_IPMASQ other than true/false is rejected like flannel does', async () => {
    const { run, out } = await generate([], { subnet: SUBNET_ENV.replace('IPMASQ=true', 'IPMASQ=yes') });
    oneLine(run);
    expect(run.stderr).toContain('Invalid value of FLANNEL_IPMASQ: yes');
    expect(out).toBeUndefined();
  });

  it('an unknown option prints the usage to stderr and exits 1; -h prints it to stdout', async () => {
    const bad = await mk(['-x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('illegal option -- x');
    expect(bad.stderr).toContain('Usage: mk-docker-opts');
    const help = await mk(['-h']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('-k KEY');
  });

  it('an option missing its argument, a stray argument and a bad -k are errors', async () => {
    expect((await mk(['-f'])).stderr).toContain('requires an argument -- f');
    expect((await mk(['-i', 'extra'])).stderr).toContain('unexpected argument "extra"');
    const f = await subnetFile();
    const badKey = await mk(['-f', f, '-d', dir.file('k.env'), '-k', 'NOT-A-NAME']);
    oneLine(badKey);
  });

  it('an unwritable output path is one line, exit 1', async () => {
    const f = await subnetFile();
    await writeFile(dir.file('afile'), '');
    oneLine(await mk(['-f', f, '-d', dir.file('afile', 'sub', 'out.env')]));
  });
});

describe('mk-docker-opts and the routing table (network namespace)', () => {
  const bed = useTestbed('mkdock');
  let host: string;

  beforeAll(async () => {
    host = await bed.addHost('h1', '198.18.0.1');
  });

  it('accepts a table where the subnet is directly connected (docker0 already up on it)', async () => {
    await bed.ip(host, 'link', 'add', 'cbr0', 'type', 'bridge');
    await bed.ip(host, 'addr', 'add', '198.19.5.1/24', 'dev', 'cbr0');
    await bed.ip(host, 'link', 'set', 'cbr0', 'up');
    try {
      const { run, out } = await generate(['-i'], { netns: host });
      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect(out).toContain('--bip=198.19.5.1/24');
    } finally {
      await bed.ip(host, 'link', 'del', 'cbr0');
    }
  });

  it('refuses a table that already routes the subnet via a gateway', async () => {
    await bed.ip(host, 'route', 'add', '198.19.5.0/24', 'via', '198.18.0.9');
    try {
      const { run, out } = await generate([], { netns: host });
      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe('mk-docker-opts: Your routing table already contains the subnet: 198.19.5.0/24 via 198.18.0.9');
      expect(out).toBeUndefined();
      // A different subnet, or a wider route through the same gateway, is fine.
      expect((await generate([], { netns: host, subnet: SUBNET_ENV.replace('198.19.5.1', '198.19.6.1') })).run.code).toBe(0);
      await bed.ip(host, 'route', 'add', '198.19.0.0/16', 'via', '198.18.0.9');
      expect((await generate([], { netns: host, subnet: SUBNET_ENV.replace('198.19.5.1', '198.19.6.1') })).run.code).toBe(0);
    } finally {
      await bed.ip(host, 'route', 'del', '198.19.5.0/24').catch(() => undefined);
      await bed.ip(host, 'route', 'del', '198.19.0.0/16').catch(() => undefined);
    }
  });
});
