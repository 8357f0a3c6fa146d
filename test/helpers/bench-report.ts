import type { Sample } from '../../bench/figures.js';
import { computeRatios, summarizeSamples, type BenchReport, type PathReport } from '../../bench/report.js';

const sample = (tcp1Gbps: number, rttMs: number): Sample => ({ tcp1Gbps, tcp4Gbps: tcp1Gbps, udpSmallKpps: 150, rttMs, cpuSecondsPerGB: 1.5 });
const ours = { product: 'flannel-ts', version: '0.1.0', path: 'dist/src/cli/flanneld.js', commit: 'abc1234' };

/** A published-shape report of 3 rounds: both references measured, one path unavailable, another flanneld beside ours. */
export function report(): BenchReport {
  const paths: PathReport[] = [
    { name: 'bare-lan', label: 'bare LAN', mtuNote: '1500', status: 'measured', mtu: 1500, figures: summarizeSamples([sample(17.6, 0.02), sample(17.1, 0.03), sample(18, 0.02)]) },
    { name: 'kernel-vxlan', label: 'kernel VXLAN', mtuNote: '1450', status: 'measured', mtu: 1450, figures: summarizeSamples([sample(15, 0.05), sample(16, 0.05), sample(14, 0.06)]) },
    { name: 'flannel-ts-udp', label: 'flannel-ts udp', mtuNote: '1472', status: 'measured', mtu: 1472, binary: ours, figures: summarizeSamples([sample(9, 0.2), sample(7.5, 0.25), sample(8, 0.3)]) },
    { name: 'flannel-ts-vxlan', label: 'flannel-ts vxlan', mtuNote: '1450', status: 'unavailable', binary: ours, reason: 'flanneld: unknown backend type: vxlan | udp' },
    {
      name: 'flannel-bin-udp', label: 'flannel v0.20.2 udp', mtuNote: '1472', status: 'measured', mtu: 1472,
      binary: { product: 'flannel', version: 'v0.20.2', path: '/opt/flanneld-go' }, figures: summarizeSamples([sample(0.4, 0.3), sample(0.5, 0.3), sample(0.45, 0.4)]),
    },
  ];
  return {
    date: '2026-11-25T18:32:14.000Z',
    wallSeconds: 300,
    rounds: { count: 3, order: paths.map((p) => p.name), seconds: [90, 95, 100] },
    machine: { cores: 2, kernel: '6.18.0', clockTicks: 100, platform: { syscallUs: 1, wakeupSameCpu: { roundTripUs: 10, wakerUs: 5 } } },
    method: {},
    paths,
    ratios: computeRatios(paths),
  };
}
