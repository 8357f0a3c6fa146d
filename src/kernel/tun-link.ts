import { writeFile } from 'node:fs/promises';
import { FlagsNew, createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { KernelError, errorMessage } from '../errors.js';
import { formatIpv4, formatIpv4Net, type Ipv4, type Ipv4Net } from '../ip/ipv4.js';

const AF_INET = 2;
const MAIN_TABLE = 254;

function ipBytes(ip: Ipv4): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ip >>> 0);
  return b;
}

async function withNetlink<T>(what: string, fn: (nl: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const nl = createRtNetlink();
  try {
    return await fn(nl);
  } catch (err) {
    throw new KernelError(`${what}: ${errorMessage(err)}`, { cause: err });
  } finally {
    nl.socket.close();
  }
}

async function linkIndex(nl: RtNetlinkSocket, name: string): Promise<number> {
  const link = (await nl.getLinks()).find((l) => l.attrs.ifname === name);
  if (!link?.data.index) throw new Error(`no link named ${name}`);
  return link.data.index;
}

function isExists(err: unknown): boolean {
  return /EEXIST|File exists/i.test(errorMessage(err));
}

/**
 * Gives the TUN device what flannel's udp backend gives flannel0: the lease's network address as a /32, the
 * overlay MTU, link up, and one route for the whole overlay Network through it. The host's own lease stays on the
 * container bridge (docker0/cbr0, a more specific route), so only traffic for other hosts enters the TUN.
 */
export async function configureTunLink(name: string, opts: { address: Ipv4; mtu: number; network: Ipv4Net }): Promise<void> {
  await withNetlink(`configuring ${name} (${formatIpv4(opts.address)}/32, mtu ${opts.mtu}, route ${formatIpv4Net(opts.network)})`, async (nl) => {
    const index = await linkIndex(nl, name);
    // ICMP errors we write back into the TUN carry flannel0's own address as source; without accept_local the
    // kernel drops them as martians and `ping` never learns the network is unreachable.
    await writeFile(`/proc/sys/net/ipv4/conf/${name}/accept_local`, '1');
    // The overlay is IPv4 only: without this, link-up makes the kernel send IPv6 router solicitations and MLD
    // reports into the TUN, which the engine can only drop (as not_ipv4). Kernels without IPv6 have no such file.
    await writeFile(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1').catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await nl.setLink({ family: 0, index, flags: { up: true }, change: { up: true } }, { mtu: opts.mtu });
    try {
      await nl.newAddress(
        { family: AF_INET, prefixlen: 32, index, scope: 0 },
        { local: ipBytes(opts.address), address: ipBytes(opts.address) },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL },
      );
    } catch (err) {
      if (!isExists(err)) throw err;
    }
    try {
      await nl.newRoute(
        { family: AF_INET, dstLen: opts.network.prefixLen, table: MAIN_TABLE, protocol: 'BOOT', scope: 'UNIVERSE', type: 'UNICAST' },
        { dst: ipBytes(opts.network.ip), oif: index, prefsrc: ipBytes(opts.address) },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL },
      );
    } catch (err) {
      // Another route for the Network (e.g. left by a crashed run) is fine: it points at a name we now own.
      if (!isExists(err)) throw err;
    }
  });
}

/** True if a link with this name exists (used to report leftovers and in tests). */
export async function linkExists(name: string): Promise<boolean> {
  return withNetlink(`looking up ${name}`, async (nl) => (await nl.getLinks()).some((l) => l.attrs.ifname === name));
}
