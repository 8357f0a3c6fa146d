#!/usr/bin/env node
import { setTimeout as sleep } from 'node:timers/promises';
import { Daemon } from '../daemon.js';
import type { DaemonExtension } from '../daemon-extension.js';
import { FlannelIptables } from '../iptables/flannel-iptables.js';
import { healthzRoute, metricsRoute, readyzRoute, serveHttp } from '../health/http-server.js';
import { createMetrics } from '../health/metrics.js';
import { FlannelError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { packageVersion } from '../package-info.js';
import { BlackholeRoute } from '../routes/blackhole-route.js';
import { notifyReadyOnSubnetFile } from '../systemd/sd-notify.js';
import { daemonOptions, daemonTuning } from './daemon-options.js';
import { exitOnUnhandled } from './fatal.js';
import { helpText, parseFlags, type FlannelOptions } from './flags.js';

/** Subcommands by first positional argument; each gets the parsed flags and resolves to an exit code. */
type Command = (options: FlannelOptions) => Promise<number>;
const COMMANDS: Record<string, () => Promise<Command>> = {
  'cloud-config': async () => (await import('./cloud-config-command.js')).cloudConfigCommand,
  leases: async () => (await import('./leases-command.js')).leasesCommand,
  teardown: async () => (await import('./teardown-command.js')).teardownCommand,
};

// A shutdown that has not finished after this long (every etcd wait in it is bounded far below) exits anyway.
const SHUTDOWN_DEADLINE_MS = 8_000;

async function runDaemon(options: FlannelOptions): Promise<number> {
  // Before anything touches etcd: with --ip-masq, a missing iptables is a startup error.
  const extensions: DaemonExtension[] = [await FlannelIptables.create(options)];
  extensions.push(new BlackholeRoute(options.ipBlackholeRoute, options.iptablesResync));
  const daemon = new Daemon(daemonOptions(options), daemonTuning(options), extensions);
  let stopping: Promise<never> | undefined;
  // SIGHUP means what SIGTERM means: flanneld reads its network config once, like flannel, so there is nothing to
  // reload, and a hang-up that silently killed the process (Node's default) would skip the cleanup.
  const shutdown = (signal: string): Promise<never> =>
    (stopping ??= (async () => {
      log.info({ event: 'shutdown', signal }, 'shutting down; the subnet lease stays for the next start');
      const deadline = setTimeout(() => {
        log.error({ event: 'shutdown-timeout', afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time; exiting anyway');
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS);
      deadline.unref();
      try {
        await daemon.stop();
        process.exit(0);
      } catch (err) {
        log.error({ event: 'shutdown-failed' }, `shutdown failed: ${errorMessage(err)}`);
        process.exit(1);
      }
    })());
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal));
  // Up before the daemon starts: /healthz answers 200 and /readyz 503 (with the reason) while we wait for etcd.
  if (options.healthzPort) {
    await serveHttp(options.healthzIp, options.healthzPort, {
      '/healthz': healthzRoute(() => daemon.liveness()),
      '/readyz': readyzRoute(() => daemon.readiness()),
    });
  }
  if (options.metricsPort) await serveHttp(options.healthzIp, options.metricsPort, { '/metrics': metricsRoute(createMetrics(daemon)) });
  // Type=notify: READY=1 once the subnet file exists, so docker's mk-docker-opts finds it.
  notifyReadyOnSubnetFile(daemon);
  try {
    await daemon.start();
  } catch (err) {
    // A signal during startup: the shutdown in progress decides the exit code.
    if (stopping) return stopping;
    // A startup error is reported by main() as one line; what was already set up (flannel0) is removed first.
    await Promise.race([daemon.stop().catch(() => undefined), sleep(SHUTDOWN_DEADLINE_MS / 2, undefined, { ref: false })]);
    throw err;
  }
  // Runs until a signal; etcd watches and timers keep the event loop alive.
  return new Promise<number>(() => undefined);
}

async function main(argv: string[]): Promise<number> {
  const options = parseFlags(argv);
  log.level = options.tuning.logLevel;
  // glog's -v: flannel logs its datapath chatter from -v=1 on; here that is the debug level.
  if (options.v > 0 && log.levelVal > log.levels.values.debug) log.level = 'debug';
  for (const warning of options.warnings) log.warn({ event: 'flag-warning' }, warning);
  if (options.version) {
    process.stderr.write(`${packageVersion()}\n`);
    return 0;
  }
  if (options.help) {
    process.stdout.write(helpText(packageVersion()));
    return 0;
  }
  const [name] = options.args;
  if (name === undefined) return runDaemon(options);
  const command = COMMANDS[name];
  if (!command) throw new FlannelError(`unknown command: ${name} (see --help)`);
  return (await command())(options);
}

exitOnUnhandled();
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    // One line, no stack: bad input is the operator's to fix, and the message says what and where.
    process.stderr.write(`flanneld: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
