import type { Ipv4, Ipv4Net } from '../ip/ipv4.js';

/** The validated network config read from `<prefix>/config`. Parsing lives in `parse-network-config.ts`. */
export interface NetworkConfig {
  readonly network: Ipv4Net;
  readonly subnetLen: number;
  readonly subnetMin: Ipv4;
  readonly subnetMax: Ipv4;
  readonly backend: BackendConfig;
}

export interface BackendConfig {
  /** Lower-cased, like flannel's backend manager; `udp` when `Backend` or `Type` is absent. */
  readonly type: string;
  /** The whole `Backend` object, for backend-specific keys such as `Port`. */
  readonly options: Readonly<Record<string, unknown>>;
}
