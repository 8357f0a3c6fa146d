import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../../testbed/netns.js';

const run = promisify(execFile);
let bed: Testbed;

beforeAll(async () => {
  bed = await Testbed.create('lft');
});

afterAll(async () => {
  await bed.cleanup();
});

describe('Testbed.leftoverProcesses', () => {
  it('finds a process in one of its namespaces even after the namespace lost its name, and none after cleanup', async () => {
    const ns = await bed.addHost('h1', '198.18.0.1');
    // Detached from its spawner, as a daemonizing server would be.
    await run('ip', ['netns', 'exec', ns, 'sh', '-c', 'setsid sleep 60 </dev/null >/dev/null 2>&1 &']);
    const commands = async () => (await bed.leftoverProcesses()).map((p) => p.command);
    await expect.poll(commands, { timeout: 5_000 }).toContain('sleep 60');
    // Deleting the name alone leaves the namespace alive while the process is inside it.
    await run('ip', ['netns', 'del', ns]);
    expect(await commands()).toContain('sleep 60');
    // cleanup() cannot find it by the namespace's name any more, only by its inode: it kills it, says so, and is
    // done only once it is gone.
    expect((await bed.cleanup()).map((p) => p.command)).toEqual(['sleep 60']);
    expect(await bed.leftoverProcesses()).toEqual([]);
  });
});
