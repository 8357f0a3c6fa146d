import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
// iptables rules are per namespace: everything here runs inside a namespace of our own.
const NS = `ftipt${process.pid % 100000}`;
const ADAPTER = resolve('dist/src/iptables/iptables.js');

/** Runs a snippet with `ipt` (an Iptables) inside the namespace; prints what the snippet returns or the error. */
async function inNs(body: string): Promise<string> {
  const script = `import(${JSON.stringify(ADAPTER)}).then(async ({ Iptables }) => { const ipt = new Iptables();
    try { console.log(JSON.stringify(await (async () => { ${body} })())); } catch (e) { console.log('ERROR ' + e.name + ': ' + e.message); } });`;
  const { stdout } = await run('ip', ['netns', 'exec', NS, process.execPath, '--input-type=module', '-e', script], { timeout: 30_000 });
  return stdout.trim();
}

beforeAll(async () => {
  await run('ip', ['netns', 'del', NS]).catch(() => undefined);
  await run('ip', ['netns', 'add', NS]);
});

afterAll(async () => {
  await run('ip', ['netns', 'del', NS]).catch(() => undefined);
});

describe('Iptables adapter (in a namespace)', () => {
  it('a failing rule is a KernelError naming the rule and quoting iptables', async () => {
    const out = await inNs(`await ipt.insertFirst({ table: 'nat', chain: 'NO-SUCH-CHAIN', spec: ['-s', '198.19.0.0/16', '-j', 'RETURN'] });`);
    expect(out).toMatch(/^ERROR KernelError: iptables insert -t nat -A NO-SUCH-CHAIN -s 198.19.0.0\/16 -j RETURN failed: .*(No chain|does not exist)/);
  });

  it('a failing restore batch quotes the batch', async () => {
    const out = await inNs(`await ipt.replaceChains('nat', ['FT-TEST'], [{ table: 'nat', chain: 'FT-TEST', spec: ['-j', 'NO-SUCH-TARGET'] }]);`);
    expect(out).toContain('ERROR KernelError: iptables-restore failed for:');
    expect(out).toContain('-A FT-TEST -j NO-SUCH-TARGET');
  });

  it('replaceChains writes the chain atomically, exists() sees its rules, deleteAll and deleteChain remove them', async () => {
    const rule = "{ table: 'nat', chain: 'FT-TEST', spec: ['-s', '198.19.0.0/16', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN'] }";
    expect(await inNs(`await ipt.replaceChains('nat', ['FT-TEST'], [${rule}, ${rule}]); return ipt.exists(${rule});`)).toBe('true');
    expect(await inNs(`await ipt.deleteAll(${rule}); return ipt.exists(${rule});`)).toBe('false');
    await inNs(`await ipt.deleteChain('nat', 'FT-TEST');`);
    const { stdout } = await run('ip', ['netns', 'exec', NS, 'iptables-save', '-t', 'nat']);
    expect(stdout).not.toContain('FT-TEST');
  });
});
