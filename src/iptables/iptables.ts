import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KernelError } from '../errors.js';

const run = promisify(execFile);

/** One rule: its table, chain and match/target arguments (`-s 198.19.0.0/16 -j RETURN`). */
export interface Rule {
  readonly table: string;
  readonly chain: string;
  readonly spec: readonly string[];
}

export function describeRule(rule: Rule): string {
  return `-t ${rule.table} -A ${rule.chain} ${rule.spec.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
}

/**
 * A small adapter over the iptables binaries (never a shell): every failure names the rule and quotes iptables.
 * `-w` waits for the xtables lock instead of failing when another tool holds it.
 */
export class Iptables {
  async exec(args: readonly string[], what: string): Promise<string> {
    try {
      return (await run('iptables', ['-w', ...args], { timeout: 30_000 })).stdout;
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim() || String(err);
      throw new KernelError(`iptables ${what} failed: ${stderr}`, { cause: err });
    }
  }

  /** True if the rule is present (iptables -C). */
  async exists(rule: Rule): Promise<boolean> {
    try {
      await run('iptables', ['-w', '-t', rule.table, '-C', rule.chain, ...rule.spec], { timeout: 30_000 });
      return true;
    } catch {
      return false;
    }
  }

  async insertFirst(rule: Rule): Promise<void> {
    await this.exec(['-t', rule.table, '-I', rule.chain, '1', ...rule.spec], `insert ${describeRule(rule)}`);
  }

  /** Deletes every copy of the rule; a missing rule is fine. */
  async deleteAll(rule: Rule): Promise<void> {
    while (await this.exists(rule)) await this.exec(['-t', rule.table, '-D', rule.chain, ...rule.spec], `delete ${describeRule(rule)}`);
  }

  async deleteChain(table: string, chain: string): Promise<void> {
    for (const op of ['-F', '-X']) {
      try {
        await run('iptables', ['-w', '-t', table, op, chain], { timeout: 30_000 });
      } catch {
        // already gone
      }
    }
  }

  /**
   * Replaces the whole content of user chains atomically: iptables-restore --noflush leaves other chains alone,
   * while a chain declared in the input is created or emptied first, so stale rules never survive a rewrite.
   */
  async replaceChains(table: string, chains: readonly string[], rules: readonly Rule[]): Promise<void> {
    const lines = [`*${table}`, ...chains.map((c) => `:${c} - [0:0]`)];
    for (const r of rules) lines.push(`-A ${r.chain} ${r.spec.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
    lines.push('COMMIT', '');
    const input = lines.join('\n');
    await new Promise<void>((resolve, reject) => {
      const child = execFile('iptables-restore', ['-w', '--noflush'], { timeout: 30_000 }, (err, _stdout, stderr) => {
        if (err) reject(new KernelError(`iptables-restore failed for:\n${input}${stderr.trim() || err.message}`, { cause: err }));
        else resolve();
      });
      child.stdin?.end(input);
    });
  }

  /** --random-fully needs iptables 1.6.2 or later (flannel checks the version the same way). */
  async supportsRandomFully(): Promise<boolean> {
    const match = /v(\d+)\.(\d+)\.(\d+)/.exec(await this.exec(['--version'], '--version'));
    if (!match) return false;
    const [major, minor, patch] = match.slice(1).map(Number);
    return major > 1 || (major === 1 && (minor > 6 || (minor === 6 && patch >= 2)));
  }
}
