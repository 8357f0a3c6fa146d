import { errorMessage } from '../errors.js';
import { log } from '../log.js';

/**
 * A rejection nobody handled or an exception nobody caught is a bug: one line saying so (event `internal-error`), and
 * exit 1 so that systemd restarts us, rather than Node's stack trace or, for a rejection, running on in an unknown
 * state.
 */
export function exitOnUnhandled(): void {
  const fatal = (kind: string) => (err: unknown) => {
    log.fatal({ event: 'internal-error', kind }, `internal error (${kind}): ${errorMessage(err)}`);
    process.exit(1);
  };
  process.on('unhandledRejection', fatal('unhandled rejection'));
  process.on('uncaughtException', fatal('uncaught exception'));
}
