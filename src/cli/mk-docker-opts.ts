#!/usr/bin/env node
/**
 * mk-docker-opts: turns flanneld's subnet file into docker daemon options, flag-compatible with flannel's
 * `mk-docker-opts.sh [-f FLANNEL-ENV-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] [-k COMBINED-KEY]`.
 *
 *   DOCKER_OPT_BIP="--bip=198.19.5.1/24"
 *   DOCKER_OPT_IPMASQ="--ip-masq=false"      (false when flannel masquerades, true when it does not)
 *   DOCKER_OPT_MTU="--mtu=1472"
 *   DOCKER_OPTS=" --bip=198.19.5.1/24 --ip-masq=false --mtu=1472"
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../files/atomic-file.js';
import { formatIpv4, formatIpv4Net, parseIpv4Net, type Ipv4Net } from '../ip/ipv4.js';
import { readRoutes } from '../kernel/netlink.js';
import { parseEnvFile } from '../subnet/subnet-file.js';

const USAGE = `Usage: mk-docker-opts [-f FLANNEL-ENV-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] [-k COMBINED-KEY]

Writes docker daemon options derived from flanneld's subnet file.
  -f FILE  flanneld's subnet file to read (default /run/flannel/subnet.env)
  -d FILE  env file to write for docker (default /run/docker_opts.env)
  -i       one variable per option: DOCKER_OPT_BIP, DOCKER_OPT_IPMASQ, DOCKER_OPT_MTU
  -c       all options in one variable (DOCKER_OPTS, or the -k key), appended to its current value
  -k KEY   name of the combined variable (default DOCKER_OPTS)
  -m       leave out --ip-masq (for docker versions without it)
Without -i and -c, both are written.
`;

/** Ends the run with a one-line message (or the usage text) and an exit code. */
class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

interface MkDockerOptsOptions {
  flannelEnv: string;
  dockerEnv: string;
  individual: boolean;
  combined: boolean;
  ipMasq: boolean;
  combinedKey: string;
}

/** POSIX getopts over "f:d:icmk:h": clustered letters (`-ic`), attached or separate arguments, `--` ends options. */
function parseArgs(argv: readonly string[]): MkDockerOptsOptions {
  const opts: MkDockerOptsOptions = {
    flannelEnv: '/run/flannel/subnet.env',
    dockerEnv: '/run/docker_opts.env',
    individual: false,
    combined: false,
    ipMasq: true,
    combinedKey: 'DOCKER_OPTS',
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (arg === '--help') throw new Exit(0, USAGE);
    if (!arg.startsWith('-') || arg === '-') break;
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j];
      if ('fdk'.includes(letter)) {
        let value = arg.slice(j + 1);
        if (!value) {
          if (i + 1 >= argv.length) throw new Exit(1, `mk-docker-opts: option requires an argument -- ${letter}\n${USAGE}`);
          value = argv[++i];
        }
        if (letter === 'f') opts.flannelEnv = value;
        else if (letter === 'd') opts.dockerEnv = value;
        else opts.combinedKey = value;
        break;
      }
      if (letter === 'i') opts.individual = true;
      else if (letter === 'c') opts.combined = true;
      else if (letter === 'm') opts.ipMasq = false;
      else if (letter === 'h') throw new Exit(0, USAGE);
      else throw new Exit(1, `mk-docker-opts: illegal option -- ${letter}\n${USAGE}`);
    }
  }
  if (i < argv.length) throw new Exit(1, `mk-docker-opts: unexpected argument ${JSON.stringify(argv[i])}\n${USAGE}`);
  if (!opts.individual && !opts.combined) opts.individual = opts.combined = true;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.combinedKey)) {
    throw new Exit(1, `mk-docker-opts: -k ${JSON.stringify(opts.combinedKey)} is not a valid variable name`);
  }
  return opts;
}

interface SubnetEnv {
  readonly bip: string;
  readonly subnet: Ipv4Net;
  readonly mtu: string;
  readonly ipMasq: string | undefined;
}

async function readSubnetEnv(path: string): Promise<SubnetEnv> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Exit(1, `mk-docker-opts: cannot read flannel env file ${path}: ${code === 'ENOENT' ? 'no such file (is flanneld running?)' : code ?? err}`);
  }
  const vars = parseEnvFile(text);
  const bad = (what: string) => new Exit(1, `mk-docker-opts: malformed flannel env file ${path}: ${what}`);
  const bip = vars.FLANNEL_SUBNET;
  if (bip === undefined) throw bad('no FLANNEL_SUBNET');
  let subnet: Ipv4Net;
  try {
    subnet = parseIpv4Net(bip);
  } catch {
    throw bad(`FLANNEL_SUBNET=${bip} is not an IPv4 CIDR`);
  }
  const mtu = vars.FLANNEL_MTU;
  if (mtu === undefined) throw bad('no FLANNEL_MTU');
  if (!/^\d+$/.test(mtu) || Number(mtu) < 68 || Number(mtu) > 65535) throw bad(`FLANNEL_MTU=${mtu} is not an MTU`);
  return { bip, subnet, mtu, ipMasq: vars.FLANNEL_IPMASQ };
}

/**
 * A route in the main table for exactly the lease subnet through a gateway means something other than flannel
 * (an old static route, another overlay) already claims it: docker0 on that subnet would be unreachable.
 */
async function gatewayRouteTo(subnet: Ipv4Net): Promise<string | undefined> {
  const route = (await readRoutes()).find((r) => r.dstLen === subnet.prefixLen && r.dst === subnet.ip && r.gateway !== undefined);
  return route?.gateway !== undefined ? formatIpv4(route.gateway) : undefined;
}

/** Double-quoted so that both a shell (`. file`) and systemd's EnvironmentFile= read the value back unchanged. */
function quote(value: string): string {
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

async function mkDockerOpts(opts: MkDockerOptsOptions, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const subnetEnv = await readSubnetEnv(opts.flannelEnv);
  const gateway = await gatewayRouteTo(subnetEnv.subnet);
  if (gateway) {
    throw new Exit(1, `mk-docker-opts: Your routing table already contains the subnet: ${formatIpv4Net(subnetEnv.subnet)} via ${gateway}`);
  }

  // Alphabetical by variable name, as flannel's script emits them (it lists `set | grep DOCKER_OPT_`).
  const vars: [string, string][] = [['DOCKER_OPT_BIP', `--bip=${subnetEnv.bip}`]];
  if (opts.ipMasq) {
    // flannel masquerading means docker must not, and the other way round.
    if (subnetEnv.ipMasq === 'true') vars.push(['DOCKER_OPT_IPMASQ', '--ip-masq=false']);
    else if (subnetEnv.ipMasq === 'false') vars.push(['DOCKER_OPT_IPMASQ', '--ip-masq=true']);
    else throw new Exit(1, `mk-docker-opts: Invalid value of FLANNEL_IPMASQ: ${subnetEnv.ipMasq ?? ''} (in ${opts.flannelEnv})`);
  }
  vars.push(['DOCKER_OPT_MTU', `--mtu=${subnetEnv.mtu}`]);

  const lines: string[] = [];
  if (opts.individual) for (const [name, value] of vars) lines.push(`${name}=${quote(value)}`);
  if (opts.combined) {
    const combined = (env[opts.combinedKey] ?? '') + vars.map(([, value]) => ` ${value}`).join('');
    lines.push(`${opts.combinedKey}=${quote(combined)}`);
  }
  return lines.join('\n') + '\n';
}

async function main(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  await writeFileAtomic(opts.dockerEnv, await mkDockerOpts(opts), 'docker env file');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof Exit) {
      (err.code === 0 ? process.stdout : process.stderr).write(err.message.endsWith('\n') ? err.message : `${err.message}\n`);
      process.exit(err.code);
    }
    process.stderr.write(`mk-docker-opts: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
