import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, BackendNetwork, BackendSettings, MetricSample } from './backend/backend.js';
import { prepareBackend } from './backend/registry.js';
import type { NetworkConfig } from './config/network-config.js';
import { parseNetworkConfig } from './config/parse-network-config.js';
import { EtcdUnavailableError, errorMessage } from './errors.js';
import { describeInterface, findExternalInterface, type ExternalInterface, type InterfaceSelection } from './iface/external-interface.js';
import { formatIpv4, formatIpv4Net, netEquals } from './ip/ipv4.js';
import { log } from './log.js';
import { EtcdRegistry, type EtcdOptions } from './subnet/etcd-registry.js';
import type { Lease } from './subnet/lease.js';
import { DEFAULT_LEASE_TTL_SECONDS, LeaseManager } from './subnet/lease-manager.js';
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

/** Knobs that only tests and benchmarks change (set through FLANNELD_* variables, not flags). */
export interface DaemonTuning {
  /** etcd lease TTL; flannel's is 24 h. */
  readonly leaseTtlSeconds: number;
  /** Pause between retries while subnets are exhausted or a renewal failed. */
  readonly retryIntervalMs: number;
  /** How long to keep trying an unreachable etcd at startup before giving up. */
  readonly etcdStartupTimeoutMs: number;
}

export function tuningFromEnv(env: NodeJS.ProcessEnv = process.env): DaemonTuning {
  const num = (name: string, fallback: number) => {
    const n = Number(env[name]);
    return env[name] && Number.isFinite(n) && n > 0 ? n : fallback;
  };
  return {
    leaseTtlSeconds: num('FLANNELD_SUBNET_LEASE_TTL', DEFAULT_LEASE_TTL_SECONDS),
    retryIntervalMs: num('FLANNELD_RETRY_INTERVAL_MS', 5_000),
    etcdStartupTimeoutMs: num('FLANNELD_ETCD_STARTUP_TIMEOUT_MS', 10_000),
  };
}

/**
 * Something that follows the lease and must be in place before the subnet file says we are ready (ip-masq rules),
 * and is undone on shutdown.
 */
export interface DaemonExtension {
  leaseReady(lease: Lease, config: NetworkConfig): Promise<void>;
  stop(): Promise<void>;
}

export interface DaemonEvents {
  'subnet-file-written': [path: string];
}

/**
 * flanneld: find the external interface, read the network config, lease a subnet, start the backend for it,
 * write the subnet file, then follow peer leases and keep our own alive. Extension points for ip-masq, health
 * and readiness are the events above plus `ready`.
 */
export class Daemon extends EventEmitter<DaemonEvents> {
  private registry: EtcdRegistry | undefined;
  private leaseManager: LeaseManager | undefined;
  private watcher: LeaseWatcher | undefined;
  private backend: Backend | undefined;
  private currentNetwork: BackendNetwork | undefined;
  private restarting: Promise<void> = Promise.resolve();
  private stopped = false;
  extIface: ExternalInterface | undefined;
  config: NetworkConfig | undefined;
  /** Successful lease renewals, for metrics. */
  renewals = 0;
  /** Failed etcd operations (renewals, lost watches), for metrics. */
  etcdErrors = 0;

  constructor(
    readonly options: DaemonOptions,
    private readonly tuning: DaemonTuning = tuningFromEnv(),
    private readonly extensions: readonly DaemonExtension[] = [],
  ) {
    super();
  }

  get lease(): Lease | undefined {
    return this.leaseManager?.lease;
  }

  get network(): BackendNetwork | undefined {
    return this.currentNetwork;
  }

  /** True while we hold an unexpired lease, the subnet file reflects it and the backend network runs. */
  get ready(): boolean {
    const lease = this.lease;
    const unexpired = lease !== undefined && (!lease.expiration || lease.expiration.getTime() > Date.now());
    return !this.stopped && unexpired && this.currentNetwork !== undefined;
  }

  get peerCount(): number {
    return this.watcher?.peers().length ?? 0;
  }

  /** What the running backend network counts, for metrics. */
  backendMetrics(): readonly MetricSample[] {
    return this.currentNetwork?.metrics() ?? [];
  }

  async start(): Promise<void> {
    const o = this.options;
    // Every check on local input comes before the first etcd write.
    await checkSubnetFileWritable(o.subnetFile);
    this.extIface = await findExternalInterface(o.iface);
    log.info({ event: 'interface' }, `using interface ${describeInterface(this.extIface)}`);
    this.registry = new EtcdRegistry(o.etcd);
    this.config = parseNetworkConfig(await this.waitForConfig(this.registry));
    const config = this.config;
    const prepared = prepareBackend(config.backend);
    log.info({ event: 'network-config', network: formatIpv4Net(config.network), backend: config.backend.type, subnetLen: config.subnetLen }, 'network config');
    this.backend = prepared.create({ config, extIface: this.extIface, settings: o.backend });

    const previous = await readPreviousSubnetFile(o.subnetFile);
    const attrs = { PublicIP: formatIpv4(this.extIface.publicIp), ...(await this.backend.leaseAttrs()) };
    const ttl = this.tuning.leaseTtlSeconds;
    this.leaseManager = new LeaseManager({
      registry: this.registry,
      config,
      attrs,
      previousSubnet: previous.network && netEquals(previous.network, config.network) ? previous.subnet : undefined,
      ttlSeconds: ttl,
      // A margin longer than the TTL would renew in a loop; half the TTL is the most that makes sense.
      renewMarginSeconds: Math.min(o.renewMarginMinutes * 60, ttl / 2),
      retryIntervalMs: this.tuning.retryIntervalMs,
    });
    this.leaseManager.on('renewed', () => this.renewals++);
    this.leaseManager.on('renew-failed', () => this.etcdErrors++);
    this.leaseManager.on('lost', () => {
      this.restarting = this.restarting.then(() => this.stopNetwork());
    });
    this.leaseManager.on('acquired', (lease) => {
      // The first acquisition is handled below; later ones follow a lost lease.
      if (this.watcher) this.restarting = this.restarting.then(() => this.startNetwork(lease));
    });

    const lease = await this.leaseManager.acquire();
    await this.startNetwork(lease);
    this.watcher = new LeaseWatcher(this.registry, attrs.PublicIP);
    this.watcher.on('lease', (event) => {
      this.currentNetwork?.applyLeaseEvent(event).catch((err) => {
        log.error({ event: 'peer-apply-failed', subnet: formatIpv4Net(event.lease.subnet) }, `cannot apply peer lease ${event.type}: ${errorMessage(err)}`);
      });
    });
    this.watcher.on('change', (event) => this.leaseManager?.handleOwnKeyEvent(event));
    this.watcher.on('watch-lost', () => this.etcdErrors++);
    await this.watcher.start();
    // The listing above replayed every current peer: what the kernel still holds for others is stale.
    await this.currentNetwork?.reconcile?.(this.watcher.peers());
  }

  /**
   * Stops renewals and watches and closes the backend network (the vxlan and host-gw backends leave their kernel
   * state for the next start to adopt); the etcd lease stays.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.leaseManager?.stop();
    await this.watcher?.stop();
    await this.restarting.catch(() => undefined);
    await this.stopNetwork();
    for (const extension of this.extensions) await extension.stop();
    this.registry?.close();
  }

  private async startNetwork(lease: Lease): Promise<void> {
    if (this.stopped || !this.backend || !this.config) return;
    await this.stopNetwork();
    const network = await this.backend.startNetwork(lease);
    this.currentNetwork = network;
    if (this.watcher) {
      const peers = this.watcher.peers();
      // All at once: a backend may batch them (one kernel read for the lot) rather than one pass per peer.
      await Promise.all(peers.map((peer) => network.applyLeaseEvent({ type: 'added', lease: peer })));
      await network.reconcile?.(peers);
    }
    for (const extension of this.extensions) await extension.leaseReady(lease, this.config);
    await writeSubnetFile(this.options.subnetFile, {
      network: this.config.network,
      subnet: lease.subnet,
      mtu: network.mtu,
      ipMasq: this.options.ipMasq,
    });
    log.info({ event: 'subnet-file-written', path: this.options.subnetFile, subnet: formatIpv4Net(lease.subnet) }, 'wrote subnet file');
    this.emit('subnet-file-written', this.options.subnetFile);
  }

  private async stopNetwork(): Promise<void> {
    const network = this.currentNetwork;
    this.currentNetwork = undefined;
    await network?.close();
  }

  /**
   * Reads `<prefix>/config`, waiting while it does not exist (flannel polls every second). An etcd that never
   * answers is a setup error after a bounded time, so a typo in --etcd-endpoints fails fast.
   */
  private async waitForConfig(registry: EtcdRegistry): Promise<string> {
    const key = `${registry.prefix}/config`;
    let failingSince: number | undefined;
    let lastWaitLog = 0;
    for (;;) {
      if (this.stopped) throw new EtcdUnavailableError('stopped while waiting for the network config');
      try {
        const raw = await registry.getNetworkConfig();
        failingSince = undefined;
        if (raw !== undefined) return raw;
        if (Date.now() - lastWaitLog > 10_000) {
          log.warn({ event: 'waiting-for-config', key }, `waiting for network config at ${key} (create it with: etcdctl put ${key} '{"Network":"198.19.0.0/16"}')`);
          lastWaitLog = Date.now();
        }
      } catch (err) {
        failingSince ??= Date.now();
        if (Date.now() - failingSince > this.tuning.etcdStartupTimeoutMs) {
          const cause = err instanceof Error && err.cause ? err.cause : err;
          throw new EtcdUnavailableError(`cannot reach etcd at ${registry.endpoints.join(',')}: ${errorMessage(cause)}`);
        }
        log.warn({ event: 'etcd-unreachable' }, `etcd not reachable yet: ${errorMessage(err)}`);
      }
      await sleep(1_000);
    }
  }
}
