import { beforeAll, describe, expect, it } from 'vitest';
import { builtFile } from '../../testbed/built.js';
import { useTestbed } from '../helpers/fixtures.js';

// iptables rules are per namespace: everything here runs inside a host namespace of our own.
const ADAPTER = builtFile('src/iptables/iptables.js');

const bed = useTestbed('ipt');
let ns: string;

beforeAll(async () => {
  ns = await bed.addHost('h1', '198.18.0.1');
});

/**
 * Runs a snippet with `ipt` (an Iptables) inside the namespace; prints what the snippet returns or the error.
 * `path` replaces PATH for the snippet, to run it without the iptables binaries.
 */
async function inNs(body: string, path?: string): Promise<string> {
  const script = `import(${JSON.stringify(ADAPTER)}).then(async ({ Iptables }) => { const ipt = new Iptables();
    try { console.log(JSON.stringify(await (async () => { ${body} })())); } catch (e) { console.log('ERROR ' + e.name + ': ' + e.message); } });`;
  const env = path === undefined ? [] : ['env', `PATH=${path}`];
  const { stdout } = await bed.exec(ns, [...env, process.execPath, '--input-type=module', '-e', script]);
  return stdout.trim();
}

describe('Iptables adapter (in a namespace)', () => {
  it('a failing rule is a KernelError naming the rule and quoting iptables', async () => {
    const out = await inNs(`await ipt.insertFirst({ table: 'nat', chain: 'NO-SUCH-CHAIN', spec: ['-s', '198.19.0.0/16', '-j', 'RETURN'] });`);
    expect(out).toMatch(/^ERROR KernelError: iptables insert -t nat -A NO-SUCH-CHAIN -s 198.19.0.0\/16 -j RETURN failed: .*(No chain|does not exist)/);
  });

  it('a failing restore is one line naming the chain, quoting iptables-restore and the input line it stopped at', async () => {
    const out = await inNs(`await ipt.replaceChains('nat', ['FT-TEST'], [{ table: 'nat', chain: 'FT-TEST', spec: ['--bogus', '-j', 'RETURN'] }]);`);
    expect(out.split('\n')).toHaveLength(1);
    expect(out).toMatch(/^ERROR KernelError: iptables-restore failed writing FT-TEST \(-t nat\): .*unknown option "--bogus".* \(at input line 3: -A FT-TEST --bogus -j RETURN\)$/);
  });

  it('a missing binary is an IptablesNotFoundError naming it, for checks as for writes', async () => {
    const rule = "{ table: 'nat', chain: 'POSTROUTING', spec: ['-j', 'RETURN'] }";
    expect(await inNs(`return ipt.exists(${rule});`, '/nonexistent')).toBe('ERROR IptablesNotFoundError: iptables not found on PATH (install the iptables package)');
    expect(await inNs(`await ipt.replaceChains('nat', ['FT-TEST'], []);`, '/nonexistent')).toMatch(/^ERROR IptablesNotFoundError: iptables-restore not found on PATH/);
  });

  it('exists() is false for a rule, or a jump to a chain, that is not there, and throws on a rule iptables cannot parse', async () => {
    expect(await inNs(`return ipt.exists({ table: 'nat', chain: 'POSTROUTING', spec: ['-s', '198.19.0.0/16', '-j', 'RETURN'] });`)).toBe('false');
    expect(await inNs(`return ipt.exists({ table: 'nat', chain: 'POSTROUTING', spec: ['-j', 'FT-GONE'] });`)).toBe('false');
    expect(await inNs(`return ipt.exists({ table: 'nat', chain: 'POSTROUTING', spec: ['--bogus'] });`)).toMatch(/^ERROR KernelError: iptables check -t nat -A POSTROUTING --bogus failed: .*--bogus/);
  });

  it('replaceChains writes the chain atomically, exists() sees its rules, deleteAll and deleteChain remove them', async () => {
    const rule = "{ table: 'nat', chain: 'FT-TEST', spec: ['-s', '198.19.0.0/16', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN'] }";
    expect(await inNs(`await ipt.replaceChains('nat', ['FT-TEST'], [${rule}, ${rule}]); return ipt.exists(${rule});`)).toBe('true');
    expect(await inNs(`await ipt.deleteAll(${rule}); return ipt.exists(${rule});`)).toBe('false');
    expect(await inNs(`return ipt.deleteChain('nat', 'FT-TEST');`)).toBe('true');
    expect(await inNs(`return ipt.deleteChain('nat', 'FT-TEST');`)).toBe('false');
    const { stdout } = await bed.exec(ns, ['iptables-save', '-t', 'nat']);
    expect(stdout).not.toContain('FT-TEST');
  });
});
