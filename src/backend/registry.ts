import { ConfigError } from '../errors.js';
import { createAllocBackend } from './alloc/alloc-backend.js';
import type { Backend, BackendContext, BackendFactory } from './backend.js';
import { createUdpBackend } from './udp/udp-backend.js';

/** Backends by `Backend.Type` (lower-cased), like flannel's backend manager. */
const FACTORIES = new Map<string, BackendFactory>([
  ['udp', createUdpBackend],
  ['alloc', createAllocBackend],
]);

export function registerBackend(type: string, factory: BackendFactory): void {
  FACTORIES.set(type, factory);
}

export function createBackend(ctx: BackendContext): Backend {
  const factory = FACTORIES.get(ctx.config.backend.type);
  if (!factory) throw new ConfigError(`unknown backend type: ${ctx.config.backend.type}`);
  return factory(ctx);
}
