import { spawn, type ChildProcess } from 'node:child_process';
import { builtFile } from './built.js';

/** The built CLI, as operators run it. */
export const FLANNELD = builtFile('src/cli/flanneld.js');

/** The flags the tests, the bench and the demo give every flanneld; anything more goes after them. */
export interface FlanneldFlags {
  readonly etcdEndpoints: string;
  readonly etcdPrefix?: string;
  readonly iface?: string;
  readonly publicIp?: string;
  readonly subnetFile?: string;
}

/** `--etcd-endpoints … --etcd-prefix … --iface … --public-ip … --subnet-file …`, leaving out the ones not given. */
export function flanneldArgs(flags: FlanneldFlags): string[] {
  const flag = (name: string, value: string | undefined) => (value === undefined ? [] : [`--${name}`, value]);
  return [
    ...flag('etcd-endpoints', flags.etcdEndpoints),
    ...flag('etcd-prefix', flags.etcdPrefix),
    ...flag('iface', flags.iface),
    ...flag('public-ip', flags.publicIp),
    ...flag('subnet-file', flags.subnetFile),
  ];
}

/**
 * The last line of a daemon's stderr, trailing blank lines left out: the one error a flanneld that exits on bad
 * input prints last (the lines before are JSON logs).
 */
export function lastLine(stderr: string): string {
  return stderr.trimEnd().split('\n').at(-1) ?? '';
}

/** A position in a daemon's log (the number of JSON entries logged before it), from FlanneldProcess.mark(). */
export type LogMark = number;

export interface FlanneldRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface FlanneldProcessOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly netns?: string;
  /** Another flanneld executable taking the same flags (e.g. real flannel's), instead of the built CLI. */
  readonly binary?: string;
  /** Options for node before the built CLI (e.g. `--import` of a module that injects a fault); not with `binary`. */
  readonly nodeArgs?: readonly string[];
}

/** A flanneld process (the built CLI), optionally inside a network namespace, with its output captured. */
export class FlanneldProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** The JSON log entries of stderr, parsed once per line as it arrives (waitForEvent polls them). */
  private readonly entries: Record<string, unknown>[] = [];
  /** What stderr holds after its last newline: a line still being written. */
  private partialLine = '';
  private readonly exited: Promise<FlanneldRun>;

  constructor(args: string[], opts: FlanneldProcessOptions = {}) {
    const command = [...(opts.binary ? [opts.binary] : [process.execPath, ...(opts.nodeArgs ?? []), FLANNELD]), ...args];
    const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...command] : command;
    // Outside a test-bed namespace flanneld would write this machine's own FORWARD chain (FLANNEL-FWD is on by
    // default, for every backend) and leave it on exit, as flannel does: such runs turn it off unless told otherwise.
    const machineDefaults = opts.netns ? {} : { FLANNELD_IPTABLES_FORWARD_RULES: 'false' };
    this.child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, ...machineDefaults, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => this.logged(d.toString()));
    // A last line without its newline is complete once stderr ends.
    this.child.stderr?.on('end', () => this.addEntry(this.partialLine));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => resolve({ code, stdout: this.stdout, stderr: this.stderr })),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * The JSON log lines written so far (flanneld logs JSON when stderr is not a terminal); with `event`, only those
   * whose `event` field is `event` and whose other fields match `fields`; with `after` (a mark()), only those logged
   * since.
   */
  events(event?: string, fields: Record<string, unknown> = {}, after: LogMark = 0): Record<string, unknown>[] {
    const matches = (e: Record<string, unknown>) =>
      (event === undefined || e.event === event) && Object.entries(fields).every(([k, v]) => e[k] === v);
    return this.entries.slice(after).filter(matches);
  }

  /** Where the log is now: pass it as `after` to wait for (or count) only what the daemon logs from here on. */
  mark(): LogMark {
    return this.entries.length;
  }

  private logged(text: string): void {
    this.stderr += text;
    const lines = (this.partialLine + text).split('\n');
    this.partialLine = lines.pop()!;
    for (const line of lines) this.addEntry(line);
  }

  /** Keeps a JSON log line; other lines (the final one-line error, a stray print) are not entries. */
  private addEntry(line: string): void {
    if (!line.startsWith('{')) return;
    try {
      this.entries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON after all
    }
  }

  /**
   * Resolves with the first logged entry whose `event` field is `event` and whose other fields match `fields`
   * (bounded: `timeoutMs`, 20 s unless given, as a number or an option). With `after`, only an entry logged after
   * that mark() counts: an event the daemon logged before (in an earlier phase of the test) does not.
   * Events are the daemon's contract with its tests and log shippers; the message text is not.
   */
  async waitForEvent(event: string, fields: Record<string, unknown> = {}, opts: number | { timeoutMs?: number; after?: LogMark } = {}): Promise<Record<string, unknown>> {
    const { timeoutMs = 20_000, after = 0 } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [found] = this.events(event, fields, after);
      if (found) return found;
      if (!this.running) throw new Error(`flanneld exited before logging event ${event}:\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`flanneld did not log event ${event} within ${timeoutMs} ms:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * The daemon's last word, for reports: its last non-empty stderr line, or that line's message when it is JSON.
   * A flanneld that refuses its input says why in that line ("flanneld: unknown backend type: vxlan ...").
   */
  lastLogLine(): string {
    const line = lastLine(this.stderr).trim();
    if (!line.startsWith('{')) return line;
    try {
      const entry = JSON.parse(line) as { msg?: unknown };
      return typeof entry.msg === 'string' ? entry.msg : line;
    } catch {
      return line;
    }
  }

  /** Waits for exit; a process still running after timeoutMs is killed, so a failed test leaves nothing behind. */
  wait(timeoutMs = 30_000): Promise<FlanneldRun> {
    return Promise.race([
      this.exited,
      new Promise<FlanneldRun>((_, reject) =>
        setTimeout(() => {
          this.child.kill('SIGKILL');
          reject(new Error(`flanneld still running after ${timeoutMs} ms:\n${this.stderr}`));
        }, timeoutMs).unref(),
      ),
    ]);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<FlanneldRun> {
    if (this.running) this.child.kill(signal);
    return this.wait();
  }
}

/** Runs flanneld to completion (for commands and bad-input checks). */
export function runFlanneld(args: string[], opts: { env?: NodeJS.ProcessEnv; netns?: string; timeoutMs?: number } = {}): Promise<FlanneldRun> {
  return new FlanneldProcess(args, opts).wait(opts.timeoutMs ?? 30_000);
}
