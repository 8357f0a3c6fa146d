import type { DaemonOptions, DaemonTuning } from '../daemon.js';
import type { EtcdOptions } from '../subnet/etcd-registry.js';
import type { FlannelOptions } from './flags.js';

/** How often the daemon reads the backend network's failure(); not a testing aid, the daemon's own pace. */
const CHECK_INTERVAL_MS = 1_000;

/** The etcd client settings of the flags, shared by the daemon and every subcommand that reads etcd. */
export function etcdOptions(flags: FlannelOptions): EtcdOptions {
  return {
    endpoints: flags.etcdEndpoints,
    prefix: flags.etcdPrefix,
    caFile: flags.etcdCafile || undefined,
    certFile: flags.etcdCertfile || undefined,
    keyFile: flags.etcdKeyfile || undefined,
    username: flags.etcdUsername || undefined,
    password: flags.etcdPassword || undefined,
  };
}

/** What the daemon needs from the command line; flags that only the CLI acts on (iptables, http) stay there. */
export function daemonOptions(flags: FlannelOptions): DaemonOptions {
  return {
    etcd: etcdOptions(flags),
    iface: { ifaces: flags.iface, ifaceRegexes: flags.ifaceRegex, canReach: flags.ifaceCanReach, publicIp: flags.publicIp },
    subnetFile: flags.subnetFile,
    ipMasq: flags.ipMasq,
    renewMarginMinutes: flags.subnetLeaseRenewMargin,
    backend: {
      antiSpoofing: flags.antiSpoofing,
      offload: flags.offload,
      queues: flags.queues,
      udpFastpath: flags.udpFastpath,
      udpFastpathLoad: { objectPath: flags.tuning.udpFastpathObject || undefined, attach: flags.tuning.udpFastpathAttach },
    },
  };
}

/** The daemon's testing aids, as parsed with the flags. */
export function daemonTuning(flags: FlannelOptions): DaemonTuning {
  const { tuning } = flags;
  return {
    leaseTtlSeconds: tuning.subnetLeaseTtl,
    retryIntervalMs: tuning.retryIntervalMs,
    etcdStartupTimeoutMs: tuning.etcdStartupTimeoutMs,
    checkIntervalMs: CHECK_INTERVAL_MS,
  };
}
