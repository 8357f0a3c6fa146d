import { UsageError } from '../errors.js';
import { formatIpv4Net } from '../ip/ipv4.js';
import { EtcdRegistry } from '../subnet/etcd-registry.js';
import type { Lease } from '../subnet/lease.js';
import { etcdOptions } from './daemon-options.js';
import type { FlannelOptions } from './flags.js';

export interface LeaseRow {
  readonly subnet: string;
  readonly publicIp: string;
  readonly backend: string;
  /** ISO time the etcd lease runs out; "never" for reservations (keys without an etcd lease). */
  readonly expires: string;
}

const HEADER: LeaseRow = { subnet: 'SUBNET', publicIp: 'PUBLIC IP', backend: 'BACKEND', expires: 'EXPIRES' };

/** Columns padded to their widest cell, separated by three spaces, like kubectl/etcdctl tables. */
export function formatLeaseTable(rows: readonly LeaseRow[]): string {
  const all = [HEADER, ...rows];
  const cols: (keyof LeaseRow)[] = ['subnet', 'publicIp', 'backend', 'expires'];
  const widths = cols.map((c) => Math.max(...all.map((r) => r[c].length)));
  return all.map((r) => cols.map((c, i) => (i === cols.length - 1 ? r[c] : r[c].padEnd(widths[i]))).join('   ')).join('\n') + '\n';
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function rowOf(registry: EtcdRegistry, lease: Lease): Promise<LeaseRow> {
  let expires = 'never';
  if (lease.leaseId) {
    const at = await registry.expirationOf(lease.leaseId);
    // Attached to an etcd lease that has just run out: etcd deletes the key a moment later.
    expires = at ? isoSeconds(at) : 'expired';
  }
  return {
    // A flannel dual-stack lease lists both subnets, comma-separated as Kubernetes writes dual-stack CIDRs.
    subnet: [formatIpv4Net(lease.subnet), ...(lease.ipv6Subnet ? [lease.ipv6Subnet] : [])].join(','),
    publicIp: lease.attrs.PublicIP,
    // flannel's own udp backend names no backend in its leases.
    backend: lease.attrs.BackendType || '-',
    expires,
  };
}

/** `flanneld leases`: the leases under --etcd-prefix as a table, ordered by subnet. */
export async function leasesCommand(options: FlannelOptions): Promise<number> {
  if (options.args.length > 1) throw new UsageError(`flanneld leases takes no arguments, got ${JSON.stringify(options.args[1])}`);
  const registry = new EtcdRegistry(etcdOptions(options));
  try {
    const { leases } = await registry.getSubnets();
    leases.sort((a, b) => a.subnet.ip - b.subnet.ip || a.subnet.prefixLen - b.subnet.prefixLen);
    const rows = await Promise.all(leases.map((l) => rowOf(registry, l)));
    process.stdout.write(formatLeaseTable(rows));
    if (!rows.length) process.stderr.write(`no leases under ${registry.subnetsPrefix}\n`);
    return 0;
  } finally {
    registry.close();
  }
}
