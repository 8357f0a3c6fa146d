import { writeFile } from 'node:fs/promises';

/**
 * Turns IPv6 off on an overlay device: the overlay is IPv4 only, and with IPv6 on, link-up makes the kernel send
 * router solicitations and MLD reports into it that no peer can use. Kernels without IPv6 have no such file.
 */
export async function disableIpv6(device: string): Promise<void> {
  await writeFile(`/proc/sys/net/ipv6/conf/${device}/disable_ipv6`, '1').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
