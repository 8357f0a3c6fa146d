import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { Testbed } from '../../testbed/netns.js';

const run = promisify(execFile);

// The testbed the overlay tests stand on: if it leaks or mis-wires, every datapath failure would be a false lead.
let bed: Testbed | undefined;

afterAll(async () => {
  await bed?.cleanup();
});

async function namespaces(): Promise<string[]> {
  return (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

describe('network-namespace testbed', () => {
  it('wires hosts through the switch and containers behind a host, then removes every namespace (and their veths)', async () => {
    bed = await Testbed.create('tb');
    const h1 = await bed.addHost('h1', '198.18.0.1');
    const h2 = await bed.addHost('h2', '198.18.0.2');
    const c1 = await bed.addContainer(h1, 'h1c', '198.19.7.1/24', '198.19.7.2');

    // Underlay: host to host across the bridge, and to the switch's own address (where etcd listens).
    await bed.exec(h1, ['ping', '-c', '1', '-W', '2', '198.18.0.2']);
    await bed.exec(h2, ['ping', '-c', '1', '-W', '2', '198.18.0.254']);
    // Container to its bridge gateway; the host forwards (ip_forward is on in host namespaces).
    await bed.exec(c1, ['ping', '-c', '1', '-W', '2', '198.19.7.1']);
    expect((await bed.exec(h1, ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('1');
    expect(await bed.ip(c1, 'route', 'show', 'default')).toContain('via 198.19.7.1');
    // Underlay only: hosts have no default route, so nothing leaks off 198.18.0.0/24.
    expect(await bed.ip(h1, 'route', 'show', 'default')).toBe('');

    const sleeper = bed.spawn(h2, ['sleep', '60']);
    await new Promise((r) => sleeper.once('spawn', r));
    const ours = (await namespaces()).filter((n) => n.startsWith(bed!.prefix));
    expect(ours.sort()).toEqual([bed.switchNs, h1, h2, c1].sort());

    await bed.cleanup();
    const exited = await new Promise((r) => (sleeper.exitCode !== null || sleeper.signalCode !== null ? r(true) : sleeper.once('exit', () => r(true))));
    expect(exited).toBe(true);
    // Veths are made with both ends in our namespaces, so deleting those (checked above) takes every one of them.
    expect((await namespaces()).filter((n) => n.startsWith(bed!.prefix))).toEqual([]);
  });
});
