import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { flanneldArgs } from '../../testbed/flanneld.js';
import { useEtcd, useFlanneld, useTempDir } from '../helpers/fixtures.js';

// The process-level handler in the running daemon, not in isolation (test/unit/fatal.test.ts): the built flanneld,
// started as operators start it, with a preloaded module that leaves a rejected promise unhandled once startup is done.
const etcd = useEtcd();
const dir = useTempDir('unhandled');
const startFlanneld = useFlanneld();

/** A module for `node --import`: once `subnetFile` exists (startup done), a promise rejects with nobody to handle it. */
function rejectAfterStartup(subnetFile: string): string {
  return `import { existsSync } from 'node:fs';
const timer = setInterval(() => {
  if (!existsSync(${JSON.stringify(subnetFile)})) return;
  clearInterval(timer);
  Promise.reject(new Error('injected after startup'));
}, 100);
timer.unref();
`;
}

describe('an unhandled rejection in the running daemon', () => {
  it('is one internal-error line and exit 1, with no stack trace and no shutdown in between', async () => {
    const prefix = await etcd.network('{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');
    const subnetFile = dir.file('subnet.env');
    const preload = dir.file('reject-after-startup.mjs');
    await writeFile(preload, rejectAfterStartup(subnetFile));
    const d = startFlanneld(flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, iface: 'lo', publicIp: '198.18.9.200', subnetFile }), {
      nodeArgs: ['--import', preload],
    });
    const { code, stderr } = await d.wait(30_000);
    expect(code).toBe(1);
    expect(d.events('subnet-file-written')).toHaveLength(1);
    const fatal = d.events('internal-error');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ kind: 'unhandled rejection', msg: 'internal error (unhandled rejection): injected after startup' });
    // Its last word: nothing after the line, no stack trace, no Node warning.
    const lines = stderr.trimEnd().split('\n');
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ event: 'internal-error' });
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(d.events('shutdown')).toEqual([]);
  }, 60_000);
});
