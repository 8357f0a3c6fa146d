import { writeFile } from 'node:fs/promises';
import { formatIpv4, formatIpv4Net, type Ipv4, type Ipv4Net } from '../ip/ipv4.js';
import { FlagsNew, AF_INET, MAIN_TABLE, ignoreExists, ipBytes, linkIndex, withNetlink } from './netlink.js';
import { disableIpv6 } from './sysctl.js';

/**
 * Gives the TUN device what flannel's udp backend gives flannel0: the lease's network address as a /32, the
 * overlay MTU, link up, and one route for the whole overlay Network through it. The host's own lease stays on the
 * container bridge (docker0/cbr0, a more specific route), so only traffic for other hosts enters the TUN.
 * Returns the device's ifindex.
 */
export async function configureTunLink(name: string, opts: { address: Ipv4; mtu: number; network: Ipv4Net }): Promise<number> {
  return withNetlink(`configuring ${name} (${formatIpv4(opts.address)}/32, mtu ${opts.mtu}, route ${formatIpv4Net(opts.network)})`, async (nl) => {
    const index = await linkIndex(nl, name);
    // ICMP errors we write back into the TUN carry flannel0's own address as source; without accept_local the
    // kernel drops them as martians and `ping` never learns the network is unreachable.
    await writeFile(`/proc/sys/net/ipv4/conf/${name}/accept_local`, '1');
    // Otherwise the engine would only drop (as not_ipv4) the solicitations and reports the kernel sends into it.
    await disableIpv6(name);
    await nl.setLink({ family: 0, index, flags: { up: true }, change: { up: true } }, { mtu: opts.mtu });
    await ignoreExists(
      nl.newAddress(
        { family: AF_INET, prefixlen: 32, index, scope: 0 },
        { local: ipBytes(opts.address), address: ipBytes(opts.address) },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL },
      ),
    );
    // Another route for the Network (e.g. left by a crashed run) is fine: it points at a name we now own.
    await ignoreExists(
      nl.newRoute(
        { family: AF_INET, dstLen: opts.network.prefixLen, table: MAIN_TABLE, protocol: 'BOOT', scope: 'UNIVERSE', type: 'UNICAST' },
        { dst: ipBytes(opts.network.ip), oif: index, prefsrc: ipBytes(opts.address) },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL },
      ),
    );
    return index;
  });
}
