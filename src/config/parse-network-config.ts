import { ConfigError } from '../errors.js';
import {
  formatIpv4,
  formatIpv4Net,
  maskOf,
  netContains,
  netLast,
  parseIpv4,
  parseIpv4Net,
  type Ipv4,
  type Ipv4Net,
} from '../ip/ipv4.js';
import { goJsonFields, isJsonObject } from './go-json.js';
import type { BackendConfig, NetworkConfig } from './network-config.js';

/**
 * Parses and validates the network config JSON stored at `<prefix>/config`, applying flannel's defaults
 * (pkg/subnet/config.go): SubnetLen 24 for a /22 or larger network, else prefix+2; SubnetMin skips the first
 * subnet; SubnetMax is the last subnet. Throws ConfigError with a one-line message for anything wrong.
 * The `Backend` object's keys belong to its type and are validated by the backend registry.
 */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`network config is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(raw)) throw new ConfigError('network config must be a JSON object');
  const field = goJsonFields(raw);
  refuseIpv6(field);

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

/** flannel's dual-stack keys: until IPv6 is supported, asking for it must fail loudly, never be ignored. */
function refuseIpv6(field: (name: string) => unknown): void {
  for (const [name, unsupported] of [['EnableIPv6', true], ['EnableIPv4', false]] as const) {
    const value = field(name);
    if (value === undefined) continue;
    if (typeof value !== 'boolean') throw new ConfigError(`"${name}" must be true or false, got ${JSON.stringify(value)}`);
    if (value === unsupported) {
      throw new ConfigError(`"${name}": ${String(value)} is not supported: flannel-ts carries IPv4 only (IPv6 is not implemented yet)`);
    }
  }
}

function parseSubnetLen(value: unknown, network: Ipv4Net): number {
  if (value === undefined || value === 0) return network.prefixLen <= 22 ? 24 : network.prefixLen + 2;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ConfigError(`"SubnetLen" must be a whole number, got ${JSON.stringify(value)}`);
  }
  if (value > 30) throw new ConfigError(`"SubnetLen" ${value} is too long: it must be 30 or less`);
  if (value < network.prefixLen + 2) {
    throw new ConfigError(
      `"SubnetLen" ${value} is too short for "Network" ${formatIpv4Net(network)}: the network must hold at least four subnets (SubnetLen ${network.prefixLen + 2} or more)`,
    );
  }
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
  // flannel runs udp when the config names no backend at all.
  if (value === undefined || value === null) return { type: 'udp', options: {} };
  if (!isJsonObject(value)) throw new ConfigError('"Backend" must be a JSON object');
  const options = value;
  const type = goJsonFields(options)('Type');
  if (type === undefined || type === '') throw new ConfigError('"Backend" has no "Type" (for example {"Type":"vxlan"})');
  if (typeof type !== 'string') throw new ConfigError('"Backend.Type" must be a string');
  return { type: type.toLowerCase(), options };
}
