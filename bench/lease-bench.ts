// npm run bench:leases: how long acquiring a subnet lease takes against a local etcd (p50/p99 over 200 sequential
// acquisitions by distinct hosts), and how long 200 allocators started at once take until all hold a lease.
// Writes bench/results/runs/leases-<stamp>.json; `-- --publish` also makes it bench/results/leases-latest.json.
import { parseNetworkConfig } from '../src/config/parse-network-config.js';
import { errorMessage } from '../src/errors.js';
import { formatIpv4Net } from '../src/ip/ipv4.js';
import { EtcdRegistry } from '../src/subnet/etcd-registry.js';
import { retrySchedule } from '../src/retry.js';
import { LeaseManager } from '../src/subnet/lease-manager.js';
import { EtcdServer } from '../testbed/etcd.js';
import { exitCode, handleInterrupts, interruptedBy, interruption } from '../testbed/interrupt.js';
import { publishRequested, saveSideRun } from './results.js';

const HOSTS = 200;
const CONFIG = parseNetworkConfig('{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function manager(registry: EtcdRegistry, i: number): LeaseManager {
  return new LeaseManager({ registry, config: CONFIG, attrs: { PublicIP: `198.18.${1 + (i >> 8)}.${i & 255}` }, renewMarginSeconds: 3600, retry: retrySchedule(100) });
}

async function main(): Promise<void> {
  const publish = publishRequested('bench:leases');
  const date = new Date();
  handleInterrupts((line) => process.stderr.write(`${line}\n`));
  const etcd = new EtcdServer();
  try {
    await etcd.launch();
    // Sequential: one host after another, each a fresh client, as separate flanneld processes would be.
    const sequential: number[] = [];
    for (let i = 0; i < HOSTS; i++) {
      interruption.throwIfAborted();
      const registry = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix: '/bench-seq/network' });
      const m = manager(registry, i);
      const start = performance.now();
      await m.acquire();
      sequential.push(performance.now() - start);
      m.stop();
      registry.close();
    }
    sequential.sort((a, b) => a - b);

    // Concurrent: 200 allocators racing for subnets of one /16.
    const registries = Array.from({ length: HOSTS }, () => new EtcdRegistry({ endpoints: [etcd.endpoint], prefix: '/bench-par/network' }));
    const managers = registries.map((r, i) => manager(r, i));
    const start = performance.now();
    const leases = await Promise.all(managers.map((m) => m.acquire()));
    const concurrentMs = performance.now() - start;
    managers.forEach((m) => m.stop());
    registries.forEach((r) => r.close());
    const distinct = new Set(leases.map((l) => formatIpv4Net(l.subnet))).size;

    const report = {
      date: new Date().toISOString(),
      sequential: { hosts: HOSTS, p50Ms: +percentile(sequential, 50).toFixed(2), p99Ms: +percentile(sequential, 99).toFixed(2), maxMs: +sequential[sequential.length - 1].toFixed(2) },
      concurrent: { hosts: HOSTS, totalMs: +concurrentMs.toFixed(1), distinctSubnets: distinct },
    };
    const json = `${JSON.stringify(report, null, 2)}\n`;
    const files = await saveSideRun('leases', date, json, publish);
    process.stdout.write(`${json}wrote ${files.join(', ')}\n`);
  } finally {
    await etcd.stop();
  }
}

main().then(
  () => process.exit(exitCode(0)),
  (err) => {
    if (!interruptedBy()) process.stderr.write(`lease bench failed: ${errorMessage(err)}\n`);
    process.exit(exitCode(1));
  },
);
