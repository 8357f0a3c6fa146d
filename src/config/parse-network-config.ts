import { ConfigError } from '../errors.js';
import {
  formatIpv4,
  formatIpv4Net,
  makeNet,
  maskOf,
  netContains,
  netLast,
  parseIpv4,
  parseIpv4Net,
  type Ipv4,
  type Ipv4Net,
} from '../ip/ipv4.js';
import type { BackendConfig, NetworkConfig } from './network-config.js';

/** Backends this build can run; the registry checks again, this keeps config errors in one place. */
export const KNOWN_BACKENDS = ['udp', 'alloc'] as const;

/**
 * Parses and validates the network config JSON stored at `<prefix>/config`, applying flannel's defaults
 * (pkg/subnet/config.go): SubnetLen 24 for a /22 or larger network, else prefix+2; SubnetMin skips the first
 * subnet; SubnetMax is the last subnet. Throws ConfigError with a one-line message for anything wrong.
 */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`network config is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('network config must be a JSON object');
  }
  // Go's encoding/json matches keys case-insensitively; operators write "network" as often as "Network".
  const field = caseInsensitive(raw as Record<string, unknown>);

  const networkText = field('Network');
  if (networkText === undefined || networkText === '') {
    throw new ConfigError('network config has no "Network" (an IPv4 CIDR such as "198.19.0.0/16")');
  }
  if (typeof networkText !== 'string') throw new ConfigError('"Network" must be a string such as "198.19.0.0/16"');
  let network: Ipv4Net;
  try {
    network = parseIpv4Net(networkText);
  } catch {
    throw new ConfigError(`"Network" is not an IPv4 CIDR: ${JSON.stringify(networkText)}`);
  }
  if (network.prefixLen > 28) {
    throw new ConfigError(`"Network" ${formatIpv4Net(network)} is too small: the minimum useful network is a /28`);
  }

  const subnetLen = parseSubnetLen(field('SubnetLen'), network);
  const subnetSize = 2 ** (32 - subnetLen);
  const subnetMin = parseBound('SubnetMin', field('SubnetMin'), network, subnetLen, network.ip + subnetSize);
  const subnetMax = parseBound('SubnetMax', field('SubnetMax'), network, subnetLen, netLast(network) + 1 - subnetSize);
  if (subnetMin > subnetMax) {
    throw new ConfigError(`"SubnetMin" ${formatIpv4(subnetMin)} is above "SubnetMax" ${formatIpv4(subnetMax)}`);
  }

  return { network, subnetLen, subnetMin, subnetMax, backend: parseBackend(field('Backend')) };
}

function caseInsensitive(obj: Record<string, unknown>): (name: string) => unknown {
  const lower = new Map<string, unknown>();
  for (const [key, value] of Object.entries(obj)) {
    if (!lower.has(key.toLowerCase())) lower.set(key.toLowerCase(), value);
  }
  return (name) => lower.get(name.toLowerCase());
}

function parseSubnetLen(value: unknown, network: Ipv4Net): number {
  if (value === undefined || value === 0) return network.prefixLen <= 22 ? 24 : network.prefixLen + 2;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ConfigError(`"SubnetLen" must be a whole number, got ${JSON.stringify(value)}`);
  }
  if (value <= network.prefixLen) {
    throw new ConfigError(`"SubnetLen" ${value} must be larger than the prefix of "Network" ${formatIpv4Net(network)}`);
  }
  if (value > 30) throw new ConfigError(`"SubnetLen" ${value} is too long: it must be 30 or less`);
  return value;
}

function parseBound(name: string, value: unknown, network: Ipv4Net, subnetLen: number, fallback: number): Ipv4 {
  if (value === undefined || value === '') return fallback >>> 0;
  if (typeof value !== 'string') throw new ConfigError(`"${name}" must be a string IPv4 address`);
  let ip: Ipv4;
  try {
    ip = parseIpv4(value);
  } catch {
    throw new ConfigError(`"${name}" is not an IPv4 address: ${JSON.stringify(value)}`);
  }
  if (!netContains(network, ip)) {
    throw new ConfigError(`"${name}" ${value} is not inside "Network" ${formatIpv4Net(network)}`);
  }
  if ((ip & maskOf(subnetLen)) >>> 0 !== ip) {
    throw new ConfigError(`"${name}" ${value} is not on a /${subnetLen} boundary`);
  }
  return ip;
}

function parseBackend(value: unknown): BackendConfig {
  if (value === undefined || value === null) return { type: 'udp', options: {} };
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError('"Backend" must be a JSON object');
  const options = value as Record<string, unknown>;
  const typeValue = caseInsensitive(options)('Type') ?? 'udp';
  if (typeof typeValue !== 'string') throw new ConfigError('"Backend.Type" must be a string');
  const type = typeValue.toLowerCase();
  if (!(KNOWN_BACKENDS as readonly string[]).includes(type)) {
    throw new ConfigError(`unknown backend type: ${typeValue} (supported: ${KNOWN_BACKENDS.join(', ')})`);
  }
  const port = caseInsensitive(options)('Port');
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new ConfigError(`"Backend.Port" must be a UDP port number (1-65535), got ${JSON.stringify(port)}`);
  }
  return { type, options };
}

/** The subnets a lease may take, as a network of `subnetLen` bits at `ip`. */
export function subnetAt(config: NetworkConfig, ip: Ipv4): Ipv4Net {
  return makeNet(ip, config.subnetLen);
}
