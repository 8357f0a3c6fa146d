import { rm } from 'node:fs/promises';
import { OverlayCluster, type OverlayHost } from '../testbed/overlay.js';
import { makeTempDir } from '../testbed/tempdir.js';

export interface TwoHosts {
  readonly cluster: OverlayCluster;
  readonly a: OverlayHost;
  readonly b: OverlayHost;
}

const UDP = '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}';

/**
 * The stage of most scenarios: etcd in a switch namespace, hosts a (198.18.0.1) and b (198.18.0.2) running flanneld
 * with the udp backend (each with its own FLANNELD_* environment), a container behind each, reachable over the
 * overlay. `body` runs on it; everything is removed afterwards, whatever happened.
 */
export async function withTwoHosts<T>(tag: string, env: { a?: NodeJS.ProcessEnv; b?: NodeJS.ProcessEnv }, body: (hosts: TwoHosts) => Promise<T>): Promise<T> {
  const dir = await makeTempDir(tag);
  let cluster: OverlayCluster | undefined;
  try {
    cluster = await OverlayCluster.create(tag, dir, UDP);
    const a = await cluster.addHost('a', 1, env.a);
    const b = await cluster.addHost('b', 2, env.b);
    await cluster.addContainer(a);
    await cluster.addContainer(b);
    await cluster.expectReachable(a, b);
    return await body({ cluster, a, b });
  } finally {
    await cluster?.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
}
