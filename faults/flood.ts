#!/usr/bin/env node
/**
 * A rogue flannel peer: sends `count` malformed or hostile datagrams to a udp backend at a bounded rate, then prints
 * how many it sent, by kind, as JSON. Run inside the rogue host's namespace by malformed-flood.ts:
 *   node flood.js '{"bind":"198.18.0.3","target":"198.18.0.1","port":8285,"count":1000,"rate":10000,"seed":1,
 *                   "rogue":"198.19.250.0","ours":"198.19.5.2","foreign":"198.19.6.2"}'
 * `rogue` is the subnet of the lease registered for this host; `ours` an address behind the target, `foreign` one
 * behind another host. Every address is in 198.18.0.0/15 except the multicast destination, which never leaves the
 * target host.
 */
import { createSocket } from 'node:dgram';
import { errorMessage } from '../src/errors.js';
import { formatIpv4, parseIpv4 } from '../src/ip/ipv4.js';
import { ipv4Packet, prng } from '../testbed/packets.js';

interface FloodOptions {
  readonly bind: string;
  readonly target: string;
  readonly port: number;
  readonly count: number;
  /** Datagrams per second. */
  readonly rate: number;
  readonly seed: number;
  readonly rogue: string;
  readonly ours: string;
  readonly foreign: string;
}

/** The kinds of datagram sent, each a generator; round-robin over a random pick keeps every kind well represented. */
function kinds(o: FloodOptions, rand: () => number): Record<string, () => Buffer> {
  const int = (n: number) => Math.floor(rand() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const rogueHost = () => formatIpv4(parseIpv4(o.rogue) + 1 + int(250));
  const udp = (n: number) => {
    const u = Buffer.concat([Buffer.alloc(8), bytes(n)]);
    u.writeUInt16BE(40000 + int(1000), 0);
    u.writeUInt16BE(9, 2); // discard
    u.writeUInt16BE(u.length, 4); // checksum 0: none, valid for UDP over IPv4
    return u;
  };
  const packet = (dst: string, src = rogueHost(), ttl = 64) => ipv4Packet({ src, dst, ttl, protocol: 17, payload: udp(int(200)) });
  return {
    random: () => bytes(1 + int(1400)),
    empty: () => Buffer.alloc(0),
    truncated_header: () => packet(o.ours).subarray(0, 1 + int(19)),
    bad_header_length: () => Object.assign(packet(o.ours), { 0: 0x40 | int(5) }),
    short_body: () => {
      const p = packet(o.ours);
      return p.subarray(0, 20 + int(Math.max(1, p.length - 21)));
    },
    wrong_version: () => Object.assign(packet(o.ours), { 0: [0x65, 0x05, 0xf5, 0x75][int(4)] }),
    to_ours: () => packet(o.ours),
    to_foreign: () => packet(o.foreign),
    to_multicast: () => packet('224.0.0.251'),
    spoofed_source: () => packet(o.ours, [o.ours, o.foreign, `198.19.${int(250)}.${1 + int(250)}`][int(3)]),
    ttl_expiring: () => packet(o.ours, rogueHost(), 1),
  };
}

async function flood(o: FloodOptions): Promise<{ sent: number; errors: number; byKind: Record<string, number> }> {
  const rand = prng(o.seed);
  const generators = kinds(o, rand);
  const names = Object.keys(generators);
  const byKind: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(o.port, o.bind, resolve);
  });
  let sent = 0;
  let errors = 0;
  let queued = 0;
  const started = Date.now();
  while (queued < o.count) {
    // Bounded rate: send what the clock allows, then wait for the kernel to take it before the next slice.
    const due = Math.min(o.count, Math.floor(((Date.now() - started) / 1000) * o.rate) + 1);
    const batch: Promise<void>[] = [];
    for (; queued < due; queued++) {
      const kind = names[Math.floor(rand() * names.length)];
      const datagram = generators[kind]();
      batch.push(
        new Promise((resolve) =>
          socket.send(datagram, o.port, o.target, (err) => {
            if (err) errors++;
            else {
              sent++;
              byKind[kind]++;
            }
            resolve();
          }),
        ),
      );
    }
    await Promise.all(batch);
    await new Promise((r) => setTimeout(r, 5));
  }
  socket.close();
  return { sent, errors, byKind };
}

flood(JSON.parse(process.argv[2]) as FloodOptions).then(
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
  (err) => {
    process.stderr.write(`flood: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
