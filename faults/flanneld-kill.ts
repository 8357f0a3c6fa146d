import { readFile } from 'node:fs/promises';
import { parseEnvFile } from '../src/subnet/subnet-file.js';
import { sleep } from '../testbed/interrupt.js';
import { pingFor } from './observe.js';
import { run, type ScenarioResult } from './scenario.js';
import { withTwoHosts } from './two-hosts.js';

export interface FlanneldKillOptions {
  /** Kill-and-restart rounds. */
  readonly rounds: number;
}

/**
 * 3. flanneld SIGKILLed under traffic (pings every 10 ms between two containers) and started again. Expected: the
 * same subnet every time; prints how long after the restart pings got through again.
 */
export function flanneldKill(o: FlanneldKillOptions): Promise<ScenarioResult> {
  return run('flanneld-kill', (f) =>
    withTwoHosts('fkill', {}, async ({ cluster, a, b }) => {
      const resumes: number[] = [];
      let sameSubnet = true;
      for (let round = 0; round < o.rounds; round++) {
        const traffic = pingFor(cluster.bed, a.container!.ns, b.container!.ip, 2, 0.01);
        await sleep(500);
        // Taken as the new flanneld is spawned, as before: resumes count from the restart, not from the SIGKILL.
        let restartedAt = 0;
        await cluster.restartDaemon(b, { signal: 'SIGKILL', whileDown: async () => void (restartedAt = Date.now()) });
        const now = parseEnvFile(await readFile(b.subnetFile, 'utf8')).FLANNEL_SUBNET;
        if (now !== b.bridgeCidr) sameSubnet = false;
        // The first ping answered after the restart began.
        const answered = () => cluster.bed.exec(a.container!.ns, ['ping', '-n', '-c', '1', '-W', '0.2', b.container!.ip]).then(() => true, () => false);
        while (!(await answered()) && Date.now() - restartedAt < 20_000) await sleep(20);
        resumes.push((Date.now() - restartedAt) / 1000);
        await traffic;
      }
      f.set('rounds', o.rounds);
      f.set('same_subnet', sameSubnet);
      f.set('pings_resumed_s_max', Math.max(...resumes));
      f.set('pings_resumed_s_mean', resumes.reduce((x, y) => x + y, 0) / resumes.length);
      f.expect(sameSubnet, 'a restart took another subnet');
      f.expect(resumes.every((s) => s < 20), 'pings did not resume within 20 s of a restart');
    }),
  );
}
