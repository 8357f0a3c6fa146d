import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OverlayCluster } from '../testbed/overlay.js';
import { rssKiB } from '../testbed/proc.js';
import { iperfFor, sleep } from './observe.js';
import { run, type ScenarioResult } from './scenario.js';

export interface RssSoakOptions {
  readonly seconds: number;
  readonly sampleEveryS: number;
}

const UDP = '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}';

/**
 * 7. RSS of both flanneld processes under an iperf3 stream for `seconds`, sampled every `sampleEveryS`. Expected:
 * growth from the first sample to the last under 5% on each host.
 */
export function rssSoak(o: RssSoakOptions): Promise<ScenarioResult> {
  return run('rss-soak', async (f) => {
    const dir = await mkdtemp(join(tmpdir(), 'ft-frss-'));
    const cluster = await OverlayCluster.create('frss', dir, UDP);
    try {
      const [a, b] = [await cluster.addHost('a', 1), await cluster.addHost('b', 2)];
      await cluster.addContainer(a);
      await cluster.addContainer(b);
      await cluster.expectReachable(a, b);
      const pids = [a.daemon.child.pid!, b.daemon.child.pid!];
      const stream = iperfFor(cluster.bed, b.container!.ns, a.container!.ns, b.container!.ip, o.seconds);
      await sleep(2_000); // the stream is up; the first sample is taken under load
      const samples: number[][] = [];
      for (let t = 0; t * o.sampleEveryS < o.seconds - 2; t++) {
        samples.push(await Promise.all(pids.map(rssKiB)));
        await sleep(o.sampleEveryS * 1000);
      }
      samples.push(await Promise.all(pids.map(rssKiB)));
      const gbits = await stream;
      const growth = pids.map((_, i) => (samples.at(-1)![i] - samples[0][i]) / samples[0][i]);
      f.set('seconds', o.seconds);
      f.set('samples', samples.length);
      f.set('iperf_gbit_s', gbits);
      f.set('rss_kib_a', samples.map((s) => s[0]).join('/'));
      f.set('growth_pct_a', growth[0] * 100);
      f.set('growth_pct_b', growth[1] * 100);
      f.expect(gbits > 0, 'the stream carried nothing');
      f.expect(growth.every((g) => g < 0.05), `RSS grew ${growth.map((g) => `${(g * 100).toFixed(1)}%`).join(' and ')}`);
      f.expect(a.daemon.running && b.daemon.running, 'a flanneld exited');
    } finally {
      await cluster.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
