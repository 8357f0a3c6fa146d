import type { BackendDefinition, BackendNetwork } from '../backend.js';

/**
 * flannel's `alloc` backend: it only leases a subnet and writes the subnet file, carrying no traffic. Useful
 * where another component does the routing, and for exercising the control plane without touching the kernel.
 */
export const allocBackend: BackendDefinition<Record<string, never>> = {
  type: 'alloc',
  parseConfig: () => ({}),
  create: (ctx) => ({
    type: 'alloc',
    leaseAttrs: async () => ({ BackendType: 'alloc' }),
    startNetwork: async (): Promise<BackendNetwork> => ({
      mtu: ctx.extIface.mtu,
      applyLeaseEvent: async () => undefined,
      failure: () => undefined,
      metrics: () => [],
      close: async () => undefined,
    }),
  }),
};
