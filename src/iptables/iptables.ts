import { execFile } from 'node:child_process';
import { IptablesNotFoundError, KernelError } from '../errors.js';

/** One rule: its table, chain and match/target arguments (`-s 198.19.0.0/16 -j RETURN`). */
export interface Rule {
  readonly table: string;
  readonly chain: string;
  readonly spec: readonly string[];
}

const quote = (arg: string) => (/[\s"]/.test(arg) ? JSON.stringify(arg) : arg);

/** The rule as `iptables -S` prints it, with its table: `-t nat -A FLANNEL-POSTRTG -s ... -j RETURN`. */
export function describeRule(rule: Rule): string {
  return `-t ${rule.table} -A ${rule.chain} ${rule.spec.map(quote).join(' ')}`;
}

interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit status; undefined when the process did not exit by itself (killed by the timeout). */
  readonly status: number | undefined;
  readonly error?: Error;
}

/**
 * Runs an iptables binary (never a shell). Resolves whatever the exit status, so callers decide what it means;
 * rejects with IptablesNotFoundError when the binary is not on PATH.
 */
function runBinary(binary: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(binary, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      if (code === 'ENOENT') reject(new IptablesNotFoundError(binary));
      else resolve({ stdout, stderr, status: err ? (typeof code === 'number' ? code : undefined) : 0, error: err ?? undefined });
    });
    child.stdin?.on('error', () => undefined); // a binary that exits before reading its input
    child.stdin?.end(input);
  });
}

/** iptables' complaint without its usage hint, on one line. */
function complaint(result: RunResult): string {
  const lines = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('Try `'));
  return lines.join('; ') || result.error?.message || `exit status ${result.status}`;
}

/**
 * A small adapter over the iptables binaries (never a shell): every failure is one line naming the rule or
 * chain and quoting iptables; a binary missing from PATH is an IptablesNotFoundError. `-w` waits for the xtables
 * lock instead of failing when another tool (dockerd, kube-proxy) holds it.
 */
export class Iptables {
  private async exec(args: readonly string[], what: string): Promise<string> {
    const result = await runBinary('iptables', ['-w', ...args]);
    if (result.status !== 0) throw new KernelError(`iptables ${what} failed: ${complaint(result)}`, { cause: result.error });
    return result.stdout;
  }

  /**
   * True if the rule is present (iptables -C). Exit status 1 is "no such rule"; a jump to a chain someone
   * deleted exits 2 with "does not exist", which is just as missing. Anything else is a real failure.
   */
  async exists(rule: Rule): Promise<boolean> {
    const result = await runBinary('iptables', ['-w', '-t', rule.table, '-C', rule.chain, ...rule.spec]);
    if (result.status === 0) return true;
    if (result.status === 1 || (result.status === 2 && /does not exist|No chain/.test(result.stderr))) return false;
    throw new KernelError(`iptables check ${describeRule(rule)} failed: ${complaint(result)}`, { cause: result.error });
  }

  async insertFirst(rule: Rule): Promise<void> {
    await this.exec(['-t', rule.table, '-I', rule.chain, '1', ...rule.spec], `insert ${describeRule(rule)}`);
  }

  async append(rule: Rule): Promise<void> {
    await this.exec(['-t', rule.table, '-A', rule.chain, ...rule.spec], `append ${describeRule(rule)}`);
  }

  /** Deletes every copy of the rule; a missing rule is fine. Resolves with how many copies there were. */
  async deleteAll(rule: Rule): Promise<number> {
    let deleted = 0;
    for (; await this.exists(rule); deleted++) await this.exec(['-t', rule.table, '-D', rule.chain, ...rule.spec], `delete ${describeRule(rule)}`);
    return deleted;
  }

  /**
   * Flushes and deletes a user chain (nothing may jump to it any more). A chain that does not exist is fine;
   * resolves true if it existed.
   */
  async deleteChain(table: string, chain: string): Promise<boolean> {
    let existed = false;
    for (const op of ['-F', '-X']) {
      const result = await runBinary('iptables', ['-w', '-t', table, op, chain]);
      if (result.status === 0) existed = true;
      if (result.status === 0 || (result.status === 1 && /No chain|does not exist/.test(result.stderr))) continue;
      throw new KernelError(`iptables ${op} ${chain} (-t ${table}) failed: ${complaint(result)}`, { cause: result.error });
    }
    return existed;
  }

  /**
   * Replaces the whole content of user chains atomically: iptables-restore --noflush leaves other chains alone,
   * while a chain declared in the input is created or emptied first, so stale rules never survive a rewrite.
   */
  async replaceChains(table: string, chains: readonly string[], rules: readonly Rule[]): Promise<void> {
    const lines = [`*${table}`, ...chains.map((c) => `:${c} - [0:0]`)];
    for (const r of rules) lines.push(`-A ${r.chain} ${r.spec.map(quote).join(' ')}`);
    lines.push('COMMIT', '');
    const result = await runBinary('iptables-restore', ['-w', '--noflush'], lines.join('\n'));
    if (result.status === 0) return;
    // iptables-restore names the input line it stopped at; quote that line rather than the whole batch.
    const at = /Error occurred at line: (\d+)/.exec(result.stderr);
    const line = at ? lines[Number(at[1]) - 1] : undefined;
    const where = line ? ` (at input line ${at![1]}: ${line})` : '';
    const stderr = complaint({ ...result, stderr: result.stderr.replace(/Error occurred at line: \d+/, '') });
    throw new KernelError(`iptables-restore failed writing ${chains.join(', ')} (-t ${table}): ${stderr}${where}`, { cause: result.error });
  }

  /**
   * Fails with IptablesNotFoundError unless both binaries we use can be run; resolves with what `iptables --version`
   * says (`iptables v1.8.9 (nf_tables)`).
   */
  async checkAvailable(): Promise<string> {
    const version = (await this.exec(['--version'], '--version')).trim();
    await runBinary('iptables-restore', ['--version']);
    return version;
  }
}

/** --random-fully needs iptables 1.6.2 or later (flannel checks the version the same way); `version` as checkAvailable gives it. */
export function supportsRandomFully(version: string): boolean {
  const match = /v(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!match) return false;
  const [major, minor, patch] = match.slice(1).map(Number);
  return major > 1 || (major === 1 && (minor > 6 || (minor === 6 && patch >= 2)));
}
