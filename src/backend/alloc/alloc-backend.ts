import type { Backend, BackendContext, BackendNetwork } from '../backend.js';

/**
 * flannel's `alloc` backend: it only leases a subnet and writes the subnet file, carrying no traffic. Useful
 * where another component does the routing, and for exercising the control plane without touching the kernel.
 */
export function createAllocBackend(ctx: BackendContext): Backend {
  return {
    type: 'alloc',
    mtuOverhead: 0,
    leaseAttrs: async () => ({ BackendType: 'alloc' }),
    startNetwork: async (): Promise<BackendNetwork> => ({
      mtu: ctx.extIface.mtu,
      applyLeaseEvent: () => undefined,
      counters: () => undefined,
      close: async () => undefined,
    }),
  };
}
