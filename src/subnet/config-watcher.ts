import type { NetworkConfig } from '../config/network-config.js';
import { parseNetworkConfig } from '../config/parse-network-config.js';
import { errorMessage } from '../errors.js';
import type { LoopPulse } from '../health/loop-pulse.js';
import { formatIpv4Net } from '../ip/ipv4.js';
import { log } from '../log.js';
import { DEFAULT_RETRY, type RetrySchedule } from '../retry.js';
import type { Registry } from './etcd-registry.js';
import type { EtcdStatus } from './etcd-status.js';
import { ResilientWatch } from './resilient-watch.js';

export interface ConfigWatcherOptions {
  readonly registry: Registry;
  /** The config this process runs with; it never changes without a restart (as in flannel). */
  readonly running: NetworkConfig;
  readonly retry?: RetrySchedule;
  readonly status?: EtcdStatus;
}

/**
 * Follows `<prefix>/config` after startup. flanneld reads the network config once, like flannel, so an edit or a
 * delete changes nothing until a restart; this makes that visible: one warning when the stored config stops
 * matching the running one (naming what differs), one line when it matches again.
 */
export class ConfigWatcher {
  private readonly watch: ResilientWatch;
  /** What the last warning said, so that each state is logged once. */
  private reported = 'same';

  constructor(private readonly opts: ConfigWatcherOptions) {
    this.watch = new ResilientWatch({
      loop: 'config-watch',
      livenessName: 'network config watch',
      schedule: opts.retry ?? DEFAULT_RETRY,
      status: opts.status,
      list: async () => {
        const { raw, revision } = await opts.registry.getNetworkConfig();
        this.check(raw);
        return revision;
      },
      watch: (revision, onError) => opts.registry.watchNetworkConfig(revision, (raw) => this.check(raw), onError),
    });
  }

  /** The config watch's liveness. */
  get pulse(): LoopPulse {
    return this.watch.pulse;
  }

  async start(): Promise<void> {
    await this.watch.start({ retryDenied: true });
  }

  async stop(): Promise<void> {
    await this.watch.stop();
  }

  private check(raw: string | undefined): void {
    const key = this.opts.registry.configKey;
    const running = this.opts.running;
    let state: string;
    let message: string;
    if (raw === undefined) {
      state = 'deleted';
      message = `the network config ${key} was deleted; flanneld keeps running with the config it started with (Network ${formatIpv4Net(running.network)}), but a restart would wait for it to be created again`;
    } else {
      const difference = describeDifference(running, raw);
      state = difference ? `changed:${difference}` : 'same';
      message = `the network config ${key} changed (${difference}); flanneld keeps running with the config it started with: restart flanneld on every host to apply the new one`;
    }
    if (state === this.reported) return;
    const wasReported = this.reported !== 'same';
    this.reported = state;
    if (state === 'deleted') log.warn({ event: 'network-config-deleted', key }, message);
    else if (state !== 'same') log.warn({ event: 'network-config-changed', key }, message);
    else if (wasReported) log.info({ event: 'network-config-restored', key }, `the network config ${key} matches the running one again`);
  }
}

/** What differs between the running config and a stored value, for the warning; '' when nothing does. */
function describeDifference(running: NetworkConfig, raw: string): string {
  let stored: NetworkConfig;
  try {
    stored = parseNetworkConfig(raw);
  } catch (err) {
    return `the new value is invalid: ${errorMessage(err)}`;
  }
  const fields: [string, (c: NetworkConfig) => unknown][] = [
    ['Network', (c) => formatIpv4Net(c.network)],
    ['SubnetLen', (c) => c.subnetLen],
    ['SubnetMin', (c) => c.subnetMin],
    ['SubnetMax', (c) => c.subnetMax],
    ['Backend', (c) => JSON.stringify(c.backend)],
  ];
  return fields
    .filter(([, read]) => read(running) !== read(stored))
    .map(([name, read]) => (name === 'Network' ? `Network ${read(running)} -> ${read(stored)}` : `${name} differs`))
    .join(', ');
}
