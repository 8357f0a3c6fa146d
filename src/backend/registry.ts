import type { BackendConfig } from '../config/network-config.js';
import { ConfigError } from '../errors.js';
import { allocBackend } from './alloc/alloc-backend.js';
import type { Backend, BackendContext, BackendDefinition } from './backend.js';
import { hostGwBackend } from './host-gw/host-gw-backend.js';
import { udpBackend } from './udp/udp-backend.js';
import { vxlanBackend } from './vxlan/vxlan-backend.js';

/** Every backend this build can run, by `Backend.Type` (flannel's backend manager lower-cases the type too). */
const DEFINITIONS: ReadonlyMap<string, BackendDefinition<never>> = new Map(
  [udpBackend, vxlanBackend, hostGwBackend, allocBackend].map((d) => [d.type, d as BackendDefinition<never>]),
);

function backendTypes(): string[] {
  return [...DEFINITIONS.keys()];
}

export function backendDefinitions(): BackendDefinition<never>[] {
  return [...DEFINITIONS.values()];
}

/** A backend type whose config keys have been validated: everything needed to build it once the host is known. */
export interface PreparedBackend {
  readonly type: string;
  create(ctx: Omit<BackendContext, 'backendConfig'>): Backend;
}

/**
 * Validates the `Backend` object of the network config against its type's registration, before anything is
 * written to etcd: an unknown type or a bad key is a one-line ConfigError.
 */
export function prepareBackend(backend: BackendConfig): PreparedBackend {
  const definition = DEFINITIONS.get(backend.type) as BackendDefinition<unknown> | undefined;
  if (!definition) {
    throw new ConfigError(`unknown backend type: ${backend.type} (supported: ${backendTypes().join(', ')})`);
  }
  const backendConfig = definition.parseConfig(backend.options);
  return { type: definition.type, create: (ctx) => definition.create({ ...ctx, backendConfig }) };
}
