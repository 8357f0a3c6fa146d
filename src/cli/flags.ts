import { UsageError } from '../errors.js';

type FlagKind = 'string' | 'bool' | 'int' | 'list';

interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly default: string;
  readonly help: string;
  /** Inclusive range for int flags. */
  readonly range?: readonly [number, number];
}

/** flanneld's flags, named as flannel names them (main.go), so existing units and options.env files work. */
export const FLAGS: readonly FlagSpec[] = [
  { name: 'etcd-endpoints', kind: 'list', default: 'http://127.0.0.1:2379', help: 'comma-separated etcd endpoints' },
  { name: 'etcd-prefix', kind: 'string', default: '/coreos.com/network', help: 'etcd prefix holding config and subnets' },
  { name: 'etcd-cafile', kind: 'string', default: '', help: 'CA file for etcd TLS' },
  { name: 'etcd-certfile', kind: 'string', default: '', help: 'client certificate file for etcd TLS' },
  { name: 'etcd-keyfile', kind: 'string', default: '', help: 'client key file for etcd TLS' },
  { name: 'etcd-username', kind: 'string', default: '', help: 'username for etcd authentication' },
  { name: 'etcd-password', kind: 'string', default: '', help: 'password for etcd authentication' },
  { name: 'iface', kind: 'list', default: '', help: 'interface name or IP for inter-host traffic (repeatable; default: the default route\'s interface)' },
  { name: 'public-ip', kind: 'string', default: '', help: 'IP other hosts send to (default: the interface\'s IP)' },
  { name: 'subnet-file', kind: 'string', default: '/run/flannel/subnet.env', help: 'where to write the subnet env file' },
  { name: 'ip-masq', kind: 'bool', default: 'false', help: 'masquerade traffic leaving the overlay' },
  { name: 'subnet-lease-renew-margin', kind: 'int', default: '60', range: [1, 1439], help: 'renew the lease this many minutes before it expires' },
  { name: 'iptables-resync', kind: 'int', default: '5', range: [1, 86400], help: 'seconds between checks that the ip-masq rules are in place' },
  { name: 'healthz-ip', kind: 'string', default: '0.0.0.0', help: 'address the healthz server listens on' },
  { name: 'healthz-port', kind: 'int', default: '0', range: [0, 65535], help: 'healthz port (0 disables it)' },
  { name: 'metrics-port', kind: 'int', default: '0', range: [0, 65535], help: 'Prometheus metrics port (0 disables it)' },
  { name: 'anti-spoofing', kind: 'bool', default: 'true', help: 'drop received packets whose inner source is not in the sending host\'s lease' },
  { name: 'offload', kind: 'bool', default: 'true', help: 'let the udp datapath use TSO/GRO with the kernel (wire format unchanged)' },
  { name: 'queues', kind: 'int', default: '0', range: [0, 16], help: 'TUN queues of the udp datapath, each with its own UDP socket and two threads (0: one per two CPUs)' },
  { name: 'help', kind: 'bool', default: 'false', help: 'print this help and exit' },
  { name: 'version', kind: 'bool', default: 'false', help: 'print the version and exit' },
];

export interface FlannelOptions {
  readonly etcdEndpoints: string[];
  readonly etcdPrefix: string;
  readonly etcdCafile: string;
  readonly etcdCertfile: string;
  readonly etcdKeyfile: string;
  readonly etcdUsername: string;
  readonly etcdPassword: string;
  readonly iface: string[];
  readonly publicIp: string;
  readonly subnetFile: string;
  readonly ipMasq: boolean;
  readonly subnetLeaseRenewMargin: number;
  readonly iptablesResync: number;
  readonly healthzIp: string;
  readonly healthzPort: number;
  readonly metricsPort: number;
  readonly antiSpoofing: boolean;
  readonly offload: boolean;
  readonly queues: number;
  readonly help: boolean;
  readonly version: boolean;
  /** Positional arguments (a subcommand and its arguments). */
  readonly args: string[];
}

/** `etcd-prefix` → `FLANNELD_ETCD_PREFIX`: flannel's rule (coreos/pkg flagutil.SetFlagsFromEnv). */
export function envName(flag: string): string {
  return `FLANNELD_${flag.toUpperCase().replace(/[-.]/g, '_')}`;
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Parses flags the way Go's `flag` package does (`-flag`, `--flag`, `--flag=value`, `--flag value`, bare bools),
 * then fills every flag not given on the command line from its FLANNELD_* variable. Flag > env > default.
 */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): FlannelOptions {
  const given = new Map<string, string[]>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      args.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = FLAGS.find((f) => f.name === name);
    if (!spec) throw new UsageError(`unknown flag: -${name.length > 1 ? '-' : ''}${name} (see --help)`);
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i];
    else throw new UsageError(`flag --${name} needs a value`);
    given.set(name, [...(given.get(name) ?? []), value]);
  }

  const out: Record<string, unknown> = { args };
  for (const spec of FLAGS) {
    let values = given.get(spec.name);
    let source = `--${spec.name}`;
    if (!values) {
      const fromEnv = env[envName(spec.name)];
      if (fromEnv !== undefined && fromEnv !== '') {
        values = [fromEnv];
        source = envName(spec.name);
      }
    }
    out[camel(spec.name)] = convert(spec, values ?? [spec.default], source);
  }
  return out as unknown as FlannelOptions;
}

function convert(spec: FlagSpec, values: string[], source: string): unknown {
  const last = values[values.length - 1];
  switch (spec.kind) {
    case 'string':
      return last;
    case 'list':
      return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    case 'bool': {
      const v = last.toLowerCase();
      if (['1', 't', 'true'].includes(v)) return true;
      if (['0', 'f', 'false'].includes(v)) return false;
      throw new UsageError(`invalid value ${JSON.stringify(last)} for ${source}: expected true or false`);
    }
    case 'int': {
      const n = /^-?\d+$/.test(last.trim()) ? Number(last) : NaN;
      const [min, max] = spec.range ?? [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        throw new UsageError(`invalid value ${JSON.stringify(last)} for ${source}: expected a whole number from ${min} to ${max}`);
      }
      return n;
    }
  }
}

export function helpText(version: string): string {
  const lines = [
    `flanneld ${version} — overlay network subnet manager (flannel-compatible)`,
    '',
    'Usage: flanneld [flags]',
    '       flanneld leases [flags]          list the leases under --etcd-prefix',
    '       flanneld cloud-config FILE|-     translate coreos.flannel.* into a systemd drop-in',
    '',
    'Flags (each can also be set by the environment variable shown; a flag wins over the environment):',
  ];
  for (const f of FLAGS) {
    const def = f.default && f.kind !== 'bool' ? ` (default ${f.default})` : f.kind === 'bool' && f.default === 'true' ? ' (default true)' : '';
    lines.push(`  --${f.name}${f.kind === 'bool' ? '' : ' VALUE'}`.padEnd(36) + `${f.help}${def}  [${envName(f.name)}]`);
  }
  return lines.join('\n') + '\n';
}
