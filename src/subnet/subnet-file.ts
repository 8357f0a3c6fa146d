import { readFile } from 'node:fs/promises';
import { ConfigError, FileAccessError } from '../errors.js';
import { checkWritable, writeFileAtomic } from '../files/atomic-file.js';
import { formatIpv4, formatIpv4Net, parseIpv4Net, type Ipv4Net } from '../ip/ipv4.js';

export interface SubnetFileContents {
  readonly network: Ipv4Net;
  readonly subnet: Ipv4Net;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

/** The env file docker integration reads (`--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU`). */
export function formatSubnetFile(c: SubnetFileContents): string {
  // FLANNEL_SUBNET is the lease's first usable address with the lease's prefix: docker0 takes it as --bip.
  const bip = `${formatIpv4(c.subnet.ip + 1)}/${c.subnet.prefixLen}`;
  return [
    `FLANNEL_NETWORK=${formatIpv4Net(c.network)}`,
    `FLANNEL_SUBNET=${bip}`,
    `FLANNEL_MTU=${c.mtu}`,
    `FLANNEL_IPMASQ=${c.ipMasq}`,
    '',
  ].join('\n');
}

/** Written atomically: docker's mk-docker-opts may read it at any moment. */
export async function writeSubnetFile(path: string, contents: SubnetFileContents): Promise<void> {
  await writeFileAtomic(path, formatSubnetFile(contents), 'subnet file');
}

/** Checks up front that the subnet file can be written, so bad input fails before anything touches etcd. */
export async function checkSubnetFileWritable(path: string): Promise<void> {
  await checkWritable(path, 'subnet file');
}

/** What a flanneld run recorded in its subnet file. */
export interface RecordedSubnet {
  readonly network: Ipv4Net;
  readonly subnet?: Ipv4Net;
}

/**
 * The Network and subnet a flanneld run recorded, for commands that act on them (`flanneld teardown`). Undefined if
 * the file does not exist; a file that cannot be read or names no valid FLANNEL_NETWORK is a one-line error.
 */
export async function readSubnetFile(path: string): Promise<RecordedSubnet | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FileAccessError(`cannot read subnet file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const vars = parseEnvFile(text);
  const network = tryNet(vars.FLANNEL_NETWORK);
  if (!network) throw new ConfigError(`subnet file ${path} has no valid FLANNEL_NETWORK (found ${JSON.stringify(vars.FLANNEL_NETWORK ?? '')})`);
  return { network, subnet: tryNet(vars.FLANNEL_SUBNET) };
}

/**
 * The previous run's record, used at startup to ask for the same subnet again: only a hint, so a file that is
 * missing, unreadable or garbled is simply no hint.
 */
export async function readPreviousSubnetFile(path: string): Promise<RecordedSubnet | undefined> {
  return readSubnetFile(path).catch(() => undefined);
}

export function parseEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) vars[match[1]] = match[2].trim().replace(/^"(.*)"$/, '$1');
  }
  return vars;
}

function tryNet(text: string | undefined): Ipv4Net | undefined {
  if (!text) return undefined;
  try {
    return parseIpv4Net(text); // masks 198.19.5.1/24 to the lease 198.19.5.0/24
  } catch {
    return undefined;
  }
}
