import { pino, type Logger } from 'pino';

/**
 * One structured logger for the daemon: JSON lines on stderr (one line per event) so journald and log
 * shippers can parse them. `FLANNELD_LOG_LEVEL` (or `LOG_LEVEL`) overrides the default `info`.
 */
export const log: Logger = pino(
  { base: { name: 'flanneld' }, level: process.env.FLANNELD_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info' },
  pino.destination({ fd: 2, sync: true }),
);

export type { Logger };
