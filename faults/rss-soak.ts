import { rssKiB } from '../testbed/proc.js';
import { sleep } from '../testbed/interrupt.js';
import { iperfFor } from './observe.js';
import { run, type ScenarioResult } from './scenario.js';
import { withTwoHosts } from './two-hosts.js';

export interface RssSoakOptions {
  readonly seconds: number;
  readonly sampleEveryS: number;
}

/**
 * 7. RSS of both flanneld processes under an iperf3 stream for `seconds`, sampled every `sampleEveryS`. Expected:
 * growth from the first sample to the last under 5% on each host.
 */
export function rssSoak(o: RssSoakOptions): Promise<ScenarioResult> {
  return run('rss-soak', (f) =>
    withTwoHosts('frss', {}, async ({ cluster, a, b }) => {
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
      for (const [i, name] of ['a', 'b'].entries()) {
        f.set(`rss_kib_${name}`, `${samples[0][i]}->${samples.at(-1)![i]}`);
        f.set(`rss_kib_${name}_max`, Math.max(...samples.map((s) => s[i])));
        f.set(`growth_pct_${name}`, growth[i] * 100);
      }
      f.expect(gbits > 0, 'the stream carried nothing');
      f.expect(growth.every((g) => g < 0.05), `RSS grew ${growth.map((g) => `${(g * 100).toFixed(1)}%`).join(' and ')}`);
      f.expect(a.daemon.running && b.daemon.running, 'a flanneld exited');
    }),
  );
}
