import { MAX_QUEUES } from '../datapath/native.js';
import { UsageError } from '../errors.js';
import { DEFAULT_RETRY_INTERVAL_MS } from '../retry.js';
import { DEFAULT_LEASE_TTL_SECONDS } from '../subnet/lease-manager.js';

/** `list`: repeatable and comma-separated; `repeated`: repeatable only, for values that may hold a comma (regexes). */
type FlagKind = 'string' | 'bool' | 'int' | 'list' | 'repeated';

interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly default: string;
  readonly help: string;
  /** Inclusive range for int flags. */
  readonly range?: readonly [number, number];
  /** The only values a string flag takes. */
  readonly choices?: readonly string[];
  /** flannel has the flag but flannel-ts does not do what it asks: giving it (as a flag or variable) is this error. */
  readonly refused?: string;
  /** Accepted for compatibility with flannel's glog/klog flags; not listed in --help. */
  readonly compat?: boolean;
  /** Another environment variable read when the FLANNELD_* one is unset (testing aids only). */
  readonly alsoFrom?: string;
}

const KUBE_REFUSED = 'flannel-ts takes its subnets from etcd (--etcd-endpoints, --etcd-prefix); the Kubernetes subnet manager is not supported';
const GLOG_THRESHOLDS = ['INFO', 'WARNING', 'ERROR', 'FATAL', '0', '1', '2', '3'];

/** flanneld's flags, named as flannel names them (main.go), so existing units and options.env files work. */
const FLAGS: readonly FlagSpec[] = [
  // flannel's default tries the legacy etcd client port first.
  { name: 'etcd-endpoints', kind: 'list', default: 'http://127.0.0.1:4001,http://127.0.0.1:2379', help: 'comma-separated etcd endpoints' },
  { name: 'etcd-prefix', kind: 'string', default: '/coreos.com/network', help: 'etcd prefix holding config and subnets' },
  { name: 'etcd-cafile', kind: 'string', default: '', help: 'CA file for etcd TLS' },
  { name: 'etcd-certfile', kind: 'string', default: '', help: 'client certificate file for etcd TLS' },
  { name: 'etcd-keyfile', kind: 'string', default: '', help: 'client key file for etcd TLS' },
  { name: 'etcd-username', kind: 'string', default: '', help: 'username for etcd authentication' },
  { name: 'etcd-password', kind: 'string', default: '', help: 'password for etcd authentication' },
  { name: 'iface', kind: 'list', default: '', help: 'interface name or IP for inter-host traffic (repeatable; default: the default route\'s interface)' },
  { name: 'iface-regex', kind: 'repeated', default: '', help: 'regex matched against interface IPs, then names, after --iface (repeatable)' },
  { name: 'iface-can-reach', kind: 'string', default: '', help: 'use the interface of the route to this IP' },
  { name: 'public-ip', kind: 'string', default: '', help: 'IP other hosts send to (default: the interface\'s IP)' },
  { name: 'public-ipv6', kind: 'string', default: '', help: 'IPv6 address other hosts send to', refused: 'IPv6 is not supported by flannel-ts yet' },
  { name: 'subnet-file', kind: 'string', default: '/run/flannel/subnet.env', help: 'where to write the subnet env file' },
  { name: 'ip-masq', kind: 'bool', default: 'false', help: 'masquerade traffic leaving the overlay' },
  { name: 'ip-masq-fully-random-disable', kind: 'bool', default: 'false', help: 'masquerade without --random-fully' },
  { name: 'ip-blackhole-route', kind: 'bool', default: 'false', help: 'add a blackhole route for our own subnet, so that its traffic no bridge claims is dropped' },
  { name: 'iptables-forward-rules', kind: 'bool', default: 'true', help: 'accept forwarded traffic to and from the Network (FLANNEL-FWD chain)' },
  { name: 'subnet-lease-renew-margin', kind: 'int', default: '60', range: [1, 1439], help: 'renew the lease this many minutes before it expires' },
  { name: 'iptables-resync', kind: 'int', default: '5', range: [1, 86400], help: 'seconds between checks that the iptables rules are in place' },
  { name: 'healthz-ip', kind: 'string', default: '0.0.0.0', help: 'address the healthz server listens on' },
  { name: 'healthz-port', kind: 'int', default: '0', range: [0, 65535], help: 'healthz port (0 disables it)' },
  { name: 'metrics-port', kind: 'int', default: '0', range: [0, 65535], help: 'Prometheus metrics port (0 disables it)' },
  { name: 'anti-spoofing', kind: 'bool', default: 'true', help: 'drop received packets whose inner source is not in the sending host\'s lease' },
  { name: 'offload', kind: 'bool', default: 'true', help: 'let the udp datapath use TSO/GRO with the kernel (wire format unchanged)' },
  { name: 'queues', kind: 'int', default: '0', range: [0, MAX_QUEUES], help: 'TUN queues of the udp datapath, each with its own UDP socket and two threads (0: one per two CPUs)' },
  { name: 'udp-fastpath', kind: 'string', default: 'auto', choices: ['auto', 'on', 'off'], help: 'eBPF fast path of the udp backend: auto uses it where the kernel allows, on requires it' },
  { name: 'help', kind: 'bool', default: 'false', help: 'print this help and exit' },
  { name: 'version', kind: 'bool', default: 'false', help: 'print the version and exit' },
  // glog/klog flags of flannel. Logs always go to stderr (journald collects them), which is what flannel forces too.
  { name: 'v', kind: 'int', default: '0', range: [0, 10], help: 'log verbosity: 1 or more logs debug events', compat: true },
  { name: 'vmodule', kind: 'string', default: '', help: 'glog per-file verbosity (accepted, not used)', compat: true },
  { name: 'log_backtrace_at', kind: 'string', default: '', help: 'glog backtrace location (accepted, not used)', compat: true },
  { name: 'logtostderr', kind: 'bool', default: 'true', help: 'logs always go to stderr', compat: true },
  { name: 'alsologtostderr', kind: 'bool', default: 'false', help: 'logs always go to stderr', compat: true },
  { name: 'stderrthreshold', kind: 'string', default: 'INFO', choices: GLOG_THRESHOLDS, help: 'glog threshold (every event goes to stderr)', compat: true },
  { name: 'log_dir', kind: 'string', default: '', help: 'glog log directory (accepted, not used: logs go to stderr)', compat: true },
  // Kubernetes mode of flannel.
  ...['kube-subnet-mgr', 'set-node-network-unavailable'].map((name) => ({ name, kind: 'bool' as const, default: 'false', help: '', refused: KUBE_REFUSED })),
  ...['kube-api-url', 'kubeconfig-file', 'kube-annotation-prefix', 'net-config-path'].map((name) => ({ name, kind: 'string' as const, default: '', help: '', refused: KUBE_REFUSED })),
];

/**
 * Testing aids: FLANNELD_* variables that set no flag (tests and benchmarks change them, operators have no reason to).
 * Read from the environment only, and checked like flags, so a bad value is one line before anything touches etcd.
 */
const TESTING_AIDS: readonly FlagSpec[] = [
  // setTimeout, which schedules the renewal, overflows past 2^31 ms.
  { name: 'subnet-lease-ttl', kind: 'int', default: String(DEFAULT_LEASE_TTL_SECONDS), range: [1, 2_147_483], help: 'seconds of the etcd lease on our key' },
  { name: 'retry-interval-ms', kind: 'int', default: String(DEFAULT_RETRY_INTERVAL_MS), range: [1, 3_600_000], help: 'the longest pause between retries' },
  { name: 'etcd-startup-timeout-ms', kind: 'int', default: '10000', range: [1, 86_400_000], help: 'how long an unreachable etcd is retried at startup' },
  { name: 'log-level', kind: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], alsoFrom: 'LOG_LEVEL', help: 'log level' },
  { name: 'udp-fastpath-object', kind: 'string', default: '', help: 'another BPF object for the udp fast path' },
  { name: 'udp-fastpath-attach', kind: 'string', default: 'auto', choices: ['auto', 'tcx', 'tc'], help: 'tc forces the clsact filters that kernels before 6.6 get' },
];

/** The testing aids' values, named after their variables (FLANNELD_RETRY_INTERVAL_MS is retryIntervalMs). */
export interface Tuning {
  readonly subnetLeaseTtl: number;
  readonly retryIntervalMs: number;
  readonly etcdStartupTimeoutMs: number;
  readonly logLevel: string;
  readonly udpFastpathObject: string;
  readonly udpFastpathAttach: 'auto' | 'tcx' | 'tc';
}

export interface FlannelOptions {
  readonly etcdEndpoints: string[];
  readonly etcdPrefix: string;
  readonly etcdCafile: string;
  readonly etcdCertfile: string;
  readonly etcdKeyfile: string;
  readonly etcdUsername: string;
  readonly etcdPassword: string;
  readonly iface: string[];
  readonly ifaceRegex: string[];
  readonly ifaceCanReach: string;
  readonly publicIp: string;
  readonly subnetFile: string;
  readonly ipMasq: boolean;
  readonly ipMasqFullyRandomDisable: boolean;
  readonly ipBlackholeRoute: boolean;
  readonly iptablesForwardRules: boolean;
  readonly subnetLeaseRenewMargin: number;
  readonly iptablesResync: number;
  readonly healthzIp: string;
  readonly healthzPort: number;
  readonly metricsPort: number;
  readonly antiSpoofing: boolean;
  readonly offload: boolean;
  readonly queues: number;
  readonly udpFastpath: 'auto' | 'on' | 'off';
  readonly help: boolean;
  readonly version: boolean;
  /** glog's -v: 1 or more turns on debug logging. */
  readonly v: number;
  /** The testing aids, from the environment. */
  readonly tuning: Tuning;
  /** Positional arguments (a subcommand and its arguments). */
  readonly args: string[];
  /** Things worth a warning that are not errors (an unknown FLANNELD_* variable). */
  readonly warnings: string[];
}

/** `etcd-prefix` → `FLANNELD_ETCD_PREFIX`: flannel's rule (coreos/pkg flagutil.SetFlagsFromEnv). */
export function envName(flag: string): string {
  return `FLANNELD_${flag.toUpperCase().replace(/[-.]/g, '_')}`;
}

function camel(name: string): string {
  return name.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Parses flags the way Go's `flag` package does (`-flag`, `--flag`, `--flag=value`, `--flag value`, bare bools),
 * then fills every flag not given on the command line from its FLANNELD_* variable. Flag > env > default. The
 * testing aids come from the environment only.
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

  const out: Record<string, unknown> = { args, warnings: unknownVariables(env) };
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
    if (values && spec.refused) throw new UsageError(`${source}: ${spec.refused}`);
    out[camel(spec.name)] = convert(spec, values ?? [spec.default], source);
  }
  out.tuning = Object.fromEntries(TESTING_AIDS.map((spec) => [camel(spec.name), fromEnvOnly(spec, env)]));
  return out as unknown as FlannelOptions;
}

function fromEnvOnly(spec: FlagSpec, env: NodeJS.ProcessEnv): unknown {
  for (const name of [envName(spec.name), ...(spec.alsoFrom ? [spec.alsoFrom] : [])]) {
    const value = env[name];
    if (value !== undefined && value !== '') return convert(spec, [value], name);
  }
  return convert(spec, [spec.default], envName(spec.name));
}

/** A FLANNELD_* variable that no flag reads is most likely a typo that silently does nothing: say so. */
function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const known = new Set([...FLAGS, ...TESTING_AIDS].map((f) => envName(f.name)));
  return Object.keys(env)
    .filter((name) => name.startsWith('FLANNELD_') && !known.has(name))
    .sort()
    .map((name) => `unknown environment variable ${name} is ignored (no flag of that name)`);
}

function convert(spec: FlagSpec, values: string[], source: string): unknown {
  const last = values[values.length - 1];
  switch (spec.kind) {
    case 'string':
      if (spec.choices && !spec.choices.includes(last)) {
        throw new UsageError(`invalid value ${JSON.stringify(last)} for ${source}: expected one of ${spec.choices.join(', ')}`);
      }
      return last;
    case 'list':
      return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    case 'repeated':
      return values.filter(Boolean);
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
    '       flanneld teardown [flags]        uninstall: remove the devices, routes and iptables rules flanneld left',
    '                                        (for the Network in --subnet-file; etcd is not touched)',
    '',
    'Flags (each can also be set by the environment variable shown; a flag wins over the environment):',
  ];
  for (const f of FLAGS.filter((flag) => !flag.refused && !flag.compat)) {
    const def = f.default && f.kind !== 'bool' ? ` (default ${f.default})` : f.kind === 'bool' && f.default === 'true' ? ' (default true)' : '';
    lines.push(`  --${f.name}${f.kind === 'bool' ? '' : ' VALUE'}`.padEnd(36) + `${f.help}${def}  [${envName(f.name)}]`);
  }
  return lines.join('\n') + '\n';
}
