// npm run demo (scripts/demo.sh installs and builds what is missing, then runs this): a three-host flannel-ts
// cluster on this machine, built by the same test bed the tests and the benchmark stand on.
//   switch namespace: a bridge (the "LAN", 198.18.0.0/24) and etcd on 198.18.0.254:2379
//   host namespaces h1..h3: flanneld leasing a subnet of 198.19.0.0/16, udp backend (flannel0, port 8285)
//   a container namespace behind each host's bridge, addressed from FLANNEL_SUBNET as docker --bip would be
// Everything it creates is removed when it ends, fails or is interrupted. Only RFC 2544 addresses are used.
import { readFile, rm } from 'node:fs/promises';
import { errorMessage } from '../src/errors.js';
import { flanneldArgs, runFlanneld } from './flanneld.js';
import { exitCode, handleInterrupts, interruptedBy, interruption } from './interrupt.js';
import { OverlayCluster, type OverlayHost } from './overlay.js';
import { makeTempDir } from './tempdir.js';

const CONFIG = '{"Network":"198.19.0.0/16","Backend":{"Type":"udp"}}';
const HOSTS = ['h1', 'h2', 'h3'];

const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const print = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

function step(title: string): void {
  interruption.throwIfAborted();
  print(`\n${bold(`== ${title}`)}`);
}

async function demo(cluster: OverlayCluster, workDir: string): Promise<boolean> {
  const { bed, etcd } = cluster;
  print(`work dir: ${workDir} (subnet files, etcd's data; removed at the end)`);
  step(`the LAN: namespace ${bed.switchNs} with bridge br0 (198.18.0.254/24), etcd at ${etcd.endpoint}`);
  step(`network config at ${cluster.prefix}/config`);
  print((await etcd.get(`${cluster.prefix}/config`)) ?? '');

  step(`starting flanneld on ${HOSTS.join(', ')} (198.18.0.1-${HOSTS.length})`);
  const hosts: OverlayHost[] = [];
  for (const [i, name] of HOSTS.entries()) hosts.push(await cluster.addHost(name, i + 1));
  for (const h of hosts) {
    const written = await h.daemon.waitForEvent('subnet-file-written');
    print(`${h.name}: leased ${String(written.subnet)}`);
  }

  step('leases in etcd (flanneld leases)');
  const leases = await runFlanneld(['leases', ...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: cluster.prefix })], { netns: bed.switchNs });
  print(leases.stdout + leases.stderr);

  for (const h of hosts) {
    step(`${h.name}: ${h.subnetFile}`);
    print(await readFile(h.subnetFile, 'utf8'));
    // A container behind the host's bridge, as docker --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU would set it up.
    await cluster.addContainer(h);
    print(`container ${h.container!.ip} behind cbr0 (${h.bridgeCidr})`);
  }

  const [h1] = hosts;
  step(`${h1.name}'s kernel view: flannel0 and its routes`);
  print(await bed.ip(h1.ns, '-4', 'addr', 'show', 'dev', 'flannel0'));
  print(await bed.ip(h1.ns, 'route'));

  step('ping from the container on each host to the container on every other host, across the overlay');
  let reachable = 0;
  let pairs = 0;
  for (const from of hosts) {
    for (const to of hosts) {
      if (from === to) continue;
      interruption.throwIfAborted();
      pairs++;
      // Routes follow leases asynchronously: give the first echo a bounded while, then send three.
      const first = await cluster.expectReachable(from, to).then(() => true, () => false);
      const ping = await cluster.ping(from, to, 3);
      const ok = first && ping.ok;
      const stats = ping.output.split('\n').filter((l) => /packets transmitted|^rtt/.test(l)).join('; ');
      print(`${from.name} ${from.container!.ip} -> ${to.name} ${to.container!.ip}: ${ok ? 'ok' : 'FAILED'}  ${stats}`);
      if (ok) reachable++;
    }
  }

  step('summary');
  print(`${reachable} of ${pairs} container pairs reachable over the flannel-ts udp overlay`);
  return reachable === pairs;
}

async function main(): Promise<number> {
  // An interrupt ends the step under way (its waits and commands stop) and the cleanup below runs.
  handleInterrupts(print);
  const workDir = await makeTempDir('demo');
  let cluster: OverlayCluster | undefined;
  try {
    cluster = await OverlayCluster.create('demo', workDir, CONFIG);
    return (await demo(cluster, workDir)) ? 0 : 1;
  } catch (err) {
    // Once interrupted, what failed is what the signal stopped (a terminal's Ctrl-C reaches flanneld and etcd too).
    if (!interruptedBy()) process.stderr.write(`demo failed: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    print(`\n${bold('== cleaning up')}: flanneld, etcd, namespaces, veths, ${workDir}`);
    await cluster?.cleanup();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(exitCode(code)),
  (err) => {
    process.stderr.write(`demo failed: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
