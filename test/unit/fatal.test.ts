import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { builtFile } from '../../testbed/built.js';

const run = promisify(execFile);
const FATAL = builtFile('src/cli/fatal.js');

/** Runs `body` in a fresh node process after installing flanneld's process-level handler. */
async function withHandler(body: string): Promise<{ code: number; stderr: string }> {
  const script = `const { exitOnUnhandled } = await import(${JSON.stringify(FATAL)}); exitOnUnhandled(); ${body}; setTimeout(() => {}, 5000);`;
  try {
    await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe('the process-level handler of the daemon', () => {
  for (const [what, body, kind] of [
    ['an unhandled rejection', "Promise.reject(new Error('restart failed'))", 'unhandled rejection'],
    ['an uncaught exception', "setImmediate(() => { throw new Error('restart failed'); })", 'uncaught exception'],
  ]) {
    it(`turns ${what} into one log line and exit 1`, async () => {
      const { code, stderr } = await withHandler(body);
      expect(code).toBe(1);
      const lines = stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0])).toMatchObject({ event: 'internal-error', kind, msg: `internal error (${kind}): restart failed` });
    });
  }
});
