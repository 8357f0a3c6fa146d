import { describe, expect, it } from 'vitest';
import { fastPathMetrics } from '../../src/backend/udp/udp-backend.js';
import { FAST_PATH_LEASE_DATA, leaseRunsFastPath } from '../../src/backend/udp/fastpath-lease.js';
import type { FastPathCounters } from '../../src/datapath/udp-fastpath.js';

describe('what a lease says about the fast path', () => {
  it('only BackendData {"FastPath": true} means the peer decapsulates in its kernel', () => {
    expect(leaseRunsFastPath({ PublicIP: '198.18.0.1', BackendType: 'udp', BackendData: FAST_PATH_LEASE_DATA })).toBe(true);
    // flannel's own udp lease, ours with the fast path off, and anything else that is not exactly true.
    expect(leaseRunsFastPath({ PublicIP: '198.18.0.1' })).toBe(false);
    expect(leaseRunsFastPath({ PublicIP: '198.18.0.1', BackendType: 'udp' })).toBe(false);
    expect(leaseRunsFastPath({ PublicIP: '198.18.0.1', BackendData: { FastPath: 'true' } })).toBe(false);
    expect(leaseRunsFastPath({ PublicIP: '198.18.0.1', BackendData: null })).toBe(false);
    expect(leaseRunsFastPath({ PublicIP: '198.18.0.1', BackendData: 'FastPath' })).toBe(false);
  });
});


describe('fastPathMetrics', () => {
  it('says only that the fast path is off when it does not run', () => {
    expect(fastPathMetrics(undefined)).toEqual([expect.objectContaining({ name: 'flannel_fastpath_enabled', type: 'gauge', value: 0 })]);
  });

  it('lays the counters out by direction and reason, beside the engine names', () => {
    const c: FastPathCounters = {
      txPackets: 10,
      txBytes: 1000,
      rxPackets: 20,
      rxBytes: 2000,
      txSuperPackets: 1,
      rxSuperPackets: 2,
      drops: { ttl_exceeded: 3, spoofed_source: 4 },
      passed: { no_route: 5 },
    };
    const line = (m: { name: string; labels?: Readonly<Record<string, string>>; value: number }) =>
      `${m.name}${m.labels ? JSON.stringify(m.labels) : ''} ${m.value}`;
    expect(fastPathMetrics(c).map(line)).toEqual([
      'flannel_fastpath_enabled 1',
      'flannel_fastpath_packets_total{"direction":"tx"} 10',
      'flannel_fastpath_packets_total{"direction":"rx"} 20',
      'flannel_fastpath_bytes_total{"direction":"tx"} 1000',
      'flannel_fastpath_bytes_total{"direction":"rx"} 2000',
      'flannel_fastpath_super_packets_total{"direction":"tx"} 1',
      'flannel_fastpath_super_packets_total{"direction":"rx"} 2',
      'flannel_fastpath_drops_total{"reason":"ttl_exceeded"} 3',
      'flannel_fastpath_drops_total{"reason":"spoofed_source"} 4',
      'flannel_fastpath_passed_total{"reason":"no_route"} 5',
    ]);
  });
});
