import { onTestFinished, vi } from 'vitest';
import { log } from '../../src/log.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

export interface LoggedEvents {
  /** `<level> <event>` of each entry, in order. */
  events(): string[];
  /** The fields of each entry, in order. */
  fields(): Record<string, unknown>[];
}

/**
 * Captures, instead of printing, what the code logs through `log` at `levels`, until the test ends (call it inside
 * a test). With `record`, each entry's fields are pushed there too: a test's own array, for checking the order of
 * log entries against what else the test records in it.
 */
export function loggedEvents(levels: readonly Level[] = ['info', 'warn', 'error'], record?: unknown[]): LoggedEvents {
  const entries: { level: Level; fields: Record<string, unknown> }[] = [];
  for (const level of levels) {
    const spy = vi.spyOn(log, level).mockImplementation(((fields: Record<string, unknown>) => {
      entries.push({ level, fields });
      record?.push(fields);
    }) as never);
    onTestFinished(() => spy.mockRestore());
  }
  return { events: () => entries.map((e) => `${e.level} ${e.fields.event}`), fields: () => entries.map((e) => e.fields) };
}
