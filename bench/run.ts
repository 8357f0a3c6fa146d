// npm run bench: every packet path measured in one run on this machine, so ratios between them mean something
// even though absolute numbers move from run to run. Writes bench/results/<timestamp>.json and .svg (+ latest.svg).
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { loadNativeAddon, type PlatformCosts } from '../src/datapath/native.js';
import { packageRoot } from '../src/package-info.js';
import { renderChart } from './chart.js';
import { measurePath, type PathResult } from './measure.js';
import { buildTopology } from './paths.js';

/** One line for the chart and the console: what this machine charges a userspace tunnel per syscall and wakeup. */
function describePlatform(p: PlatformCosts, cores: number): string {
  const us = (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n)} µs`;
  const cross = p.wakeupCrossCpu ? `, on another CPU ${us(p.wakeupCrossCpu.roundTripUs)} (${us(p.wakeupCrossCpu.wakerUs)} of it in the waker)` : '';
  return `${cores} cores; syscall ${us(p.syscallUs)}; thread wakeup round trip on the same CPU ${us(p.wakeupSameCpu.roundTripUs)}${cross}`;
}

async function main(): Promise<void> {
  // Measured first, on a quiet machine: the per-syscall and per-wakeup costs that set how close any userspace
  // tunnel can get to the kernel's (which pays neither), so results from different machines can be read.
  const platform = loadNativeAddon().probePlatform();
  const cores = cpus().length;
  process.stdout.write(`platform: ${describePlatform(platform, cores)}\n`);
  const topo = await buildTopology();
  const results: Record<string, PathResult> = {};
  try {
    // BENCH_PATHS=flannel-ts-udp,kernel-vxlan measures a subset while iterating; ratios need all four.
    const only = process.env.BENCH_PATHS?.split(',');
    for (const path of topo.paths.filter((p) => !only || only.includes(p.name))) {
      process.stdout.write(`measuring ${path.name} (${path.description}) ...\n`);
      results[path.name] = await measurePath(topo.cluster.bed, topo.h1, topo.h2, path.target);
      process.stdout.write(`  ${JSON.stringify(results[path.name])}\n`);
      if (path.name === 'flannel-ts-udp' && process.env.BENCH_VERBOSE) process.stdout.write(`${(await topo.datapathMetrics()).join('\n---\n')}\n`);
    }
  } finally {
    await topo.cleanup();
  }

  if (Object.keys(results).length < topo.paths.length) return;
  const ratio = (a: number, b: number) => Number((a / b).toFixed(3));
  const ours = results['flannel-ts-udp'];
  const ratios = {
    tcp1VsKernelVxlan: ratio(ours.tcp1Gbps, results['kernel-vxlan'].tcp1Gbps),
    tcp1VsNaiveRelay: ratio(ours.tcp1Gbps, results['naive-relay'].tcp1Gbps),
    tcp1VsBareLan: ratio(ours.tcp1Gbps, results['bare-lan'].tcp1Gbps),
    tcp4VsKernelVxlan: ratio(ours.tcp4Gbps, results['kernel-vxlan'].tcp4Gbps),
    rttVsKernelVxlan: ratio(ours.rttMs, results['kernel-vxlan'].rttMs),
    kernelVxlanVsBareLan: ratio(results['kernel-vxlan'].tcp1Gbps, results['bare-lan'].tcp1Gbps),
    naiveRelayVsBareLan: ratio(results['naive-relay'].tcp1Gbps, results['bare-lan'].tcp1Gbps),
  };
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(packageRoot(), 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const method = {
    paths: 'two network-namespace hosts on a veth LAN through a bridge; every path measured in this one run',
    tcp: 'iperf3 -t 5, 1 stream and -P 4; Gbit/s received',
    udpSmall: 'iperf3 -u -l 64 -b 0 -t 3; kpps received (sent minus lost)',
    rtt: 'ping -c 50 -i 0.01 on the idle path, before the load tests; average ms',
    platform: 'before the paths: mean getppid() cost, and two eventfd-connected threads pinned to CPUs 0/0 and 0/1 waking each other after 300 µs asleep, 1000 rounds',
    cpu: 'whole-machine busy jiffies (user+nice+system+irq+softirq+steal) from /proc/stat around the 1-stream TCP run, divided by GB received; includes iperf3 itself on both ends',
  };
  const report = { date: new Date().toISOString(), machine: { cores, platform }, method, results, ratios };
  await writeFile(join(dir, `${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
  const svg = renderChart(`flannel-ts packet paths, one run, ${report.date.slice(0, 16)}Z`, results, `machine: ${describePlatform(platform, cores)}`);
  await writeFile(join(dir, `${stamp}.svg`), svg);
  await writeFile(join(dir, 'latest.svg'), svg);
  await writeFile(join(dir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(`\nratios (same run): ${JSON.stringify(ratios, null, 2)}\nwrote ${join(dir, `${stamp}.json`)} and latest.svg\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
