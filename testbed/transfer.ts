import type { Testbed } from './netns.js';

export interface TcpTransfer {
  /** Namespace of the sender, where `src` is read. */
  readonly fromNs: string;
  /** Namespace of the receiver, where `dst` is written; it listens on `toIp:port`. */
  readonly toNs: string;
  readonly toIp: string;
  readonly port: number;
  readonly src: string;
  readonly dst: string;
  readonly timeoutMs?: number;
}

/**
 * Sends the file `src` over one TCP connection to a socat in `toNs` that writes it to `dst`; resolves once the
 * receiver has written everything and exited 0. Across the overlay this is the application's view: every byte, in
 * order, whatever the datapath split, merged or retransmitted on the way.
 */
export async function sendOverTcp(bed: Testbed, t: TcpTransfer): Promise<void> {
  const receiver = bed.spawn(t.toNs, ['socat', '-u', `TCP-LISTEN:${t.port},bind=${t.toIp},reuseaddr`, `OPEN:${t.dst},creat,trunc`]);
  const received = new Promise<number | null>((resolve) => receiver.on('exit', resolve));
  try {
    await bed.waitForListener(t.toNs, t.port);
    await bed.exec(t.fromNs, ['socat', '-u', `OPEN:${t.src}`, `TCP:${t.toIp}:${t.port}`], { timeoutMs: t.timeoutMs ?? 120_000 });
    const code = await received;
    if (code !== 0) throw new Error(`socat receiving on ${t.toNs} port ${t.port} exited with ${code}`);
  } finally {
    receiver.kill('SIGKILL');
  }
}

/** Writes `bytes` of random data to `file`, from inside namespace `ns`. */
export async function writeRandomFile(bed: Testbed, ns: string, file: string, bytes: number): Promise<void> {
  await bed.exec(ns, ['sh', '-c', `head -c ${bytes} /dev/urandom > ${file}`], { timeoutMs: 60_000 });
}

/** The SHA-256 of `file`, read from inside namespace `ns`. */
export async function sha256Of(bed: Testbed, ns: string, file: string): Promise<string> {
  return (await bed.exec(ns, ['sha256sum', file])).stdout.split(' ')[0];
}

/**
 * Writes `bytes` of random data to `src`, sends it with sendOverTcp and returns the SHA-256 of what was sent and of
 * what arrived in `dst`; both files are removed afterwards, whatever happened.
 */
export async function sendRandomFile(bed: Testbed, t: TcpTransfer & { readonly bytes: number }): Promise<[sent: string, received: string]> {
  try {
    await writeRandomFile(bed, t.fromNs, t.src, t.bytes);
    await sendOverTcp(bed, t);
    return [await sha256Of(bed, t.fromNs, t.src), await sha256Of(bed, t.toNs, t.dst)];
  } finally {
    await bed.exec(t.fromNs, ['rm', '-f', t.src, t.dst]).catch(() => undefined);
  }
}
