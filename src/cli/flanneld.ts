#!/usr/bin/env node
import { Daemon, tuningFromEnv, type DaemonExtension } from '../daemon.js';
import { FlannelIptables } from '../iptables/flannel-iptables.js';
import { healthzRoute, metricsRoute, serveHttp } from '../health/http-server.js';
import { createMetrics } from '../health/metrics.js';
import { FlannelError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { packageVersion } from '../package-info.js';
import { BlackholeRoute } from '../routes/blackhole-route.js';
import { notifyReadyOnSubnetFile } from '../systemd/sd-notify.js';
import { daemonOptions } from './daemon-options.js';
import { helpText, parseFlags, type FlannelOptions } from './flags.js';

/** Subcommands by first positional argument; each gets the parsed flags and resolves to an exit code. */
type Command = (options: FlannelOptions) => Promise<number>;
const COMMANDS: Record<string, () => Promise<Command>> = {
  'cloud-config': async () => (await import('./cloud-config-command.js')).cloudConfigCommand,
  leases: async () => (await import('./leases-command.js')).leasesCommand,
  teardown: async () => (await import('./teardown-command.js')).teardownCommand,
};

async function runDaemon(options: FlannelOptions): Promise<number> {
  // Before anything touches etcd: with --ip-masq, a missing iptables is a startup error.
  const extensions: DaemonExtension[] = [await FlannelIptables.create(options)];
  extensions.push(new BlackholeRoute(options.ipBlackholeRoute, options.iptablesResync));
  const daemon = new Daemon(daemonOptions(options), tuningFromEnv(), extensions);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'shutdown', signal }, 'shutting down; the subnet lease stays for the next start');
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ event: 'shutdown-failed' }, `shutdown failed: ${errorMessage(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // Up before the daemon starts, so that /healthz says 503 while we wait for etcd or a lease.
  if (options.healthzPort) await serveHttp(options.healthzIp, options.healthzPort, { '/healthz': healthzRoute(() => daemon.ready) });
  if (options.metricsPort) await serveHttp(options.healthzIp, options.metricsPort, { '/metrics': metricsRoute(createMetrics(daemon)) });
  // Type=notify: READY=1 once the subnet file exists, so docker's mk-docker-opts finds it.
  notifyReadyOnSubnetFile(daemon);
  await daemon.start();
  // Runs until a signal; etcd watches and timers keep the event loop alive.
  return new Promise<number>(() => undefined);
}

async function main(argv: string[]): Promise<number> {
  const options = parseFlags(argv);
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    // One line, no stack: bad input is the operator's to fix, and the message says what and where.
    process.stderr.write(`flanneld: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
