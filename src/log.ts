import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One JSON log line as an operator reads it on a terminal: `08:16:45 INFO  message key=value ...`. */
export function humanLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, time, msg, name: _name, pid: _pid, hostname: _host, ...fields } = entry;
  const clock = new Date(Number(time)).toISOString().slice(11, 19);
  const extra = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return [clock, (LEVELS[Number(level)] ?? String(level)).padEnd(5), msg, ...extra].join(' ');
}

function destination(): DestinationStream {
  if (!process.stderr.isTTY) return pino.destination({ fd: 2, sync: true });
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString().split('\n').filter(Boolean).map(humanLine).join('\n');
      process.stderr.write(`${text}\n`, () => done());
    },
  });
}

/**
 * One structured logger for the daemon, one line per event on stderr: JSON (for journald and log shippers)
 * unless stderr is a terminal, where the same events are printed for people. The level starts at `info`; flanneld
 * sets it from FLANNELD_LOG_LEVEL (or LOG_LEVEL) and -v once its flags are parsed.
 */
export const log: Logger = pino({ base: { name: 'flanneld' }, level: 'info' }, destination());

export type { Logger };
