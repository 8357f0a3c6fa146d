import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendNetwork, BackendSettings, MetricSample } from './backend/backend.js';
import { prepareBackend } from './backend/registry.js';
import type { NetworkConfig } from './config/network-config.js';
import { parseNetworkConfig } from './config/parse-network-config.js';
import type { DaemonExtension } from './daemon-extension.js';
import { EtcdUnavailableError, StoppedError, errorMessage } from './errors.js';
import type { HealthVerdict } from './health/http-server.js';
import { livenessOf } from './health/loop-pulse.js';
import type { MetricsSource } from './health/metrics.js';
import { describeInterface, findExternalInterface, type ExternalInterface, type InterfaceSelection } from './iface/external-interface.js';
import { formatIpv4, formatIpv4Net, netEquals } from './ip/ipv4.js';
import { log } from './log.js';
import { NetworkSupervisor } from './network-supervisor.js';
import { ConfigWatcher } from './subnet/config-watcher.js';
import { EtcdRegistry, type EtcdOptions } from './subnet/etcd-registry.js';
import { retrySchedule } from './retry.js';
import { retryEtcd } from './subnet/etcd-retry.js';
import { EtcdStatus, type EtcdErrorKind } from './subnet/etcd-status.js';
import type { Lease } from './subnet/lease.js';
import { LeaseManager } from './subnet/lease-manager.js';
import type { IgnoreReason } from './subnet/lease-screen.js';
import { LeaseWatcher } from './subnet/lease-watcher.js';
import { checkSubnetFileWritable, readPreviousSubnetFile, writeSubnetFile } from './subnet/subnet-file.js';

/** What the daemon is asked to do; the CLI maps flags and FLANNELD_* variables to this. */
export interface DaemonOptions {
  readonly etcd: EtcdOptions;
  readonly iface: InterfaceSelection;
  readonly subnetFile: string;
  /** Written to the subnet file as FLANNEL_IPMASQ, so docker leaves masquerading to flanneld. */
  readonly ipMasq: boolean;
  /** Renew the lease this long before it expires. */
  readonly renewMarginMinutes: number;
  readonly backend: BackendSettings;
}

/** Knobs that only tests and benchmarks change (the CLI reads them from FLANNELD_* variables, not flags). */
export interface DaemonTuning {
  /** etcd lease TTL; flannel's is 24 h. */
  readonly leaseTtlSeconds: number;
  /** The longest pause between retries (etcd failures, a full network, failed backend restarts); backoff starts shorter. */
  readonly retryIntervalMs: number;
  /** How long to keep trying an unreachable etcd at startup before giving up. */
  readonly etcdStartupTimeoutMs: number;
  /** How often the backend network's failure() is read (and the liveness loop turns). */
  readonly checkIntervalMs: number;
}

export interface DaemonEvents {
  'subnet-file-written': [path: string];
}

/**
 * flanneld: find the external interface, read the network config, lease a subnet, start the backend for it,
 * write the subnet file, then follow peer leases and keep our own alive. Faults are reported through three
 * contracts: log lines with an `event` field, metrics (MetricsSource), and readiness()/liveness() (/readyz, /healthz).
 */
export class Daemon extends EventEmitter<DaemonEvents> implements MetricsSource {
  private registry: EtcdRegistry | undefined;
  private leaseManager: LeaseManager | undefined;
  private watcher: LeaseWatcher | undefined;
  private configWatcher: ConfigWatcher | undefined;
  private supervisor: NetworkSupervisor | undefined;
  private readonly etcd = new EtcdStatus();
  private readonly stopping = new AbortController();
  extIface: ExternalInterface | undefined;
  config: NetworkConfig | undefined;
  /** Successful lease renewals, for metrics. */
  renewals = 0;
  /** Times the lease was re-acquired on another subnet than the one held last, for metrics. */
  leaseMoves = 0;

  constructor(
    readonly options: DaemonOptions,
    private readonly tuning: DaemonTuning,
    private readonly extensions: readonly DaemonExtension[] = [],
  ) {
    super();
  }

  /** stop() has begun: the abort signal is the one record of it. */
  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  get lease(): Lease | undefined {
    return this.leaseManager?.lease;
  }

  get network(): BackendNetwork | undefined {
    return this.supervisor?.network;
  }

  get peerCount(): number {
    return this.watcher?.peers().length ?? 0;
  }

  get etcdErrors(): Readonly<Record<EtcdErrorKind, number>> {
    return this.etcd.errors();
  }

  get datapathFailures(): number {
    return this.supervisor?.failures ?? 0;
  }

  get ignoredLeases(): Readonly<Record<IgnoreReason, number>> {
    return this.watcher?.ignoredCounts() ?? { outside_network: 0, overlap: 0 };
  }

  /** What the running backend network counts, for metrics. */
  backendMetrics(): readonly MetricSample[] {
    return this.network?.metrics() ?? [];
  }

  /**
   * Readiness (/readyz): we hold an unexpired lease, the backend network runs, and etcd lets us do our job. While a
   * lost lease is re-acquired, the datapath restarts, or etcd refuses us, this says why.
   */
  readiness(): HealthVerdict {
    if (this.stopped) return { ok: false, reason: 'shutting down' };
    const manager = this.leaseManager;
    const lease = manager?.lease;
    if (!manager) return { ok: false, reason: 'waiting for etcd and the network config' };
    if (!lease) return { ok: false, reason: manager.acquiring ? 'the subnet lease was lost; acquiring a new one' : 'acquiring a subnet lease' };
    if (lease.expiration && lease.expiration.getTime() <= Date.now()) {
      return { ok: false, reason: `the subnet lease expired at ${lease.expiration.toISOString()} without a renewal (is etcd reachable?)` };
    }
    const network = this.supervisor?.state() ?? { running: false, reason: 'starting the backend' };
    if (!network.running) return { ok: false, reason: network.reason };
    const denial = this.etcd.denial();
    if (denial) return { ok: false, reason: denial.message };
    return { ok: true };
  }

  /**
   * Liveness (/healthz): the process is up and its loops keep turning: network supervision, lease renewal (and
   * re-acquisition), the peer and config watches. Waiting for etcd, a lease or a backend restart is not a liveness failure
   * (readiness says so); a loop stuck past its due turn is.
   */
  liveness(): HealthVerdict {
    if (this.stopped) return { ok: true };
    return livenessOf([this.supervisor?.pulse, this.leaseManager?.pulse, this.watcher?.pulse, this.configWatcher?.pulse]);
  }

  async start(): Promise<void> {
    const o = this.options;
    // Every check on local input comes before the first etcd write.
    await checkSubnetFileWritable(o.subnetFile);
    this.extIface = await findExternalInterface(o.iface);
    log.info({ event: 'interface' }, `using interface ${describeInterface(this.extIface)}`);
    this.registry = new EtcdRegistry(o.etcd);
    const registry = this.registry;
    this.config = parseNetworkConfig(await this.waitForConfig(registry));
    const config = this.config;
    const prepared = prepareBackend(config.backend);
    log.info({ event: 'network-config', network: formatIpv4Net(config.network), backend: config.backend.type, subnetLen: config.subnetLen }, 'network config');
    const backend = prepared.create({ config, extIface: this.extIface, settings: o.backend });

    const previous = await readPreviousSubnetFile(o.subnetFile);
    const attrs = { PublicIP: formatIpv4(this.extIface.publicIp), ...(await backend.leaseAttrs()) };
    const ttl = this.tuning.leaseTtlSeconds;
    const retry = retrySchedule(this.tuning.retryIntervalMs);
    const leaseManager = new LeaseManager({
      registry,
      config,
      attrs,
      previousSubnet: previous && netEquals(previous.network, config.network) ? previous.subnet : undefined,
      ttlSeconds: ttl,
      // A margin longer than the TTL would renew in a loop; half the TTL is the most that makes sense.
      renewMarginSeconds: Math.min(o.renewMarginMinutes * 60, ttl / 2),
      retry,
      status: this.etcd,
    });
    this.leaseManager = leaseManager;
    const supervisor = new NetworkSupervisor({
      backend,
      prepare: (network, lease) => this.prepareNetwork(network, lease),
      checkIntervalMs: this.tuning.checkIntervalMs,
      retry,
    });
    this.supervisor = supervisor;
    const watcher = new LeaseWatcher({
      registry,
      ownPublicIp: attrs.PublicIP,
      network: config.network,
      ownSubnet: () => leaseManager.lease?.subnet,
      retry,
      status: this.etcd,
    });
    this.watcher = watcher;
    leaseManager.on('renewed', () => this.renewals++);
    leaseManager.on('moved', () => this.leaseMoves++);
    // A lost lease leaves the network running: the datapath keeps forwarding until we know where we will be.
    leaseManager.on('acquired', (lease) => {
      supervisor.follow(lease);
      watcher.refresh();
    });

    // At startup etcd refusing us is final (one line, exit 1); later it is reported and waited out.
    const lease = await leaseManager.acquire();
    await supervisor.startFirst(lease);
    this.throwIfStopped();
    watcher.on('lease', (event) => {
      const network = this.network;
      // A backend that reconciles takes the first listing whole, below, in one pass.
      if (!network || (network.reconcile && !watcher.listed)) return;
      network.applyLeaseEvent(event).catch((err) => {
        log.error({ event: 'peer-apply-failed', subnet: formatIpv4Net(event.lease.subnet) }, `cannot apply peer lease ${event.type}: ${errorMessage(err)}`);
      });
    });
    watcher.on('change', (event) => leaseManager.handleOwnKeyEvent(event));
    await watcher.start();
    this.throwIfStopped();
    // Every current peer is known now: what the kernel still holds for others is stale.
    await this.network?.reconcile?.(watcher.peers());
    this.configWatcher = new ConfigWatcher({ registry, running: config, retry, status: this.etcd });
    await this.configWatcher.start();
  }

  /** stop() ran while start() was waiting: whatever start() was about to begin must not run. */
  private throwIfStopped(): void {
    if (this.stopped) throw new StoppedError('stopped during startup');
  }

  /**
   * Stops renewals, watches and the backend network (the vxlan and host-gw backends leave their kernel state for the
   * next start to adopt); the etcd lease stays. Bounded whatever etcd does: no step waits for an etcd answer for more
   * than about a second.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopping.abort();
    this.leaseManager?.stop();
    await Promise.all([this.watcher?.stop(), this.configWatcher?.stop()]);
    // A start in progress may still open the network after this; startFirst's caller checks throwIfStopped().
    await this.supervisor?.stop();
    for (const extension of this.extensions) await extension.stop();
    this.registry?.close();
  }

  /**
   * Everything that follows a (re)started network: current peers (once the watch has listed them: before that, an
   * empty list would make the backend drop state it adopted), extensions, then the subnet file docker reads.
   */
  private async prepareNetwork(network: BackendNetwork, lease: Lease): Promise<void> {
    const config = this.config!;
    if (this.watcher?.listed) {
      const peers = this.watcher.peers();
      // One pass over the kernel for the lot where the backend reconciles; otherwise one event per peer.
      if (network.reconcile) await network.reconcile(peers);
      else await Promise.all(peers.map((peer) => network.applyLeaseEvent({ type: 'added', lease: peer })));
    }
    for (const extension of this.extensions) await extension.leaseReady(lease, config);
    await writeSubnetFile(this.options.subnetFile, {
      network: config.network,
      subnet: lease.subnet,
      mtu: network.mtu,
      ipMasq: this.options.ipMasq,
    });
    log.info({ event: 'subnet-file-written', path: this.options.subnetFile, subnet: formatIpv4Net(lease.subnet) }, 'wrote subnet file');
    this.emit('subnet-file-written', this.options.subnetFile);
  }

  /**
   * Reads `<prefix>/config`, waiting while it does not exist (flannel polls every second). An etcd that never
   * answers is a setup error after a bounded time, so a typo in --etcd-endpoints fails fast; a refusal (wrong
   * password, a role that may not read the key) fails at once.
   */
  private async waitForConfig(registry: EtcdRegistry): Promise<string> {
    const key = registry.configKey;
    let lastWaitLog = 0;
    for (;;) {
      let raw: string | undefined;
      try {
        ({ raw } = await retryEtcd(() => registry.getNetworkConfig(), {
          loop: 'startup',
          schedule: retrySchedule(1_000),
          signal: this.stopping.signal,
          status: this.etcd,
          retryDenied: false,
          giveUpAfterMs: this.tuning.etcdStartupTimeoutMs,
          onRetry: (err) => log.warn({ event: 'etcd-unreachable' }, `etcd not reachable yet: ${errorMessage(err)}`),
        }));
      } catch (err) {
        if (!(err instanceof EtcdUnavailableError)) throw err;
        const cause = err.cause instanceof Error ? err.cause : err;
        throw new EtcdUnavailableError(`cannot reach etcd at ${registry.endpoints.join(',')}: ${errorMessage(cause)}`);
      }
      if (raw !== undefined) return raw;
      if (Date.now() - lastWaitLog > 10_000) {
        log.warn({ event: 'waiting-for-config', key }, `waiting for network config at ${key} (create it with: etcdctl put ${key} '{"Network":"198.19.0.0/16"}')`);
        lastWaitLog = Date.now();
      }
      await sleep(1_000, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      if (this.stopped) throw new StoppedError('stopped while waiting for the network config');
    }
  }
}
