import { backendDefinitions } from '../backend/registry.js';
import { KernelError, UsageError, errorMessage } from '../errors.js';
import { formatIpv4Net } from '../ip/ipv4.js';
import { removeFlannelIptables } from '../iptables/flannel-iptables.js';
import { removeBlackholeRoutes } from '../routes/blackhole-route.js';
import { readSubnetFile } from '../subnet/subnet-file.js';
import type { FlannelOptions } from './flags.js';

/**
 * `flanneld teardown`: removes the devices, routes and iptables rules flanneld creates, for every backend, with
 * the Network read from `--subnet-file`. They stay in place across restarts so that traffic keeps flowing
 * meanwhile; this is for uninstalling, not restarting. Run it after flanneld has stopped: a running flanneld puts
 * its state back. It never touches etcd (the lease expires or is reused by the next start)
 * and keeps the subnet file, so running it twice is harmless.
 *
 * Without a subnet file there is no Network to find backend routes by: flanneld writes that file every time it
 * starts and nothing here deletes it, so its absence means flanneld has not run since /run was emptied (a boot),
 * and what it made before is gone with that boot. What needs no Network (our blackhole routes, marked as ours,
 * our iptables chains, known by name, and what each backend finds without one, such as the udp fast path's clsact
 * filters, known by handle) is still removed, and a warning names the file. A subnet file that exists but names
 * no Network is an error and nothing is removed: we would be guessing.
 */
export async function teardownCommand(options: FlannelOptions): Promise<number> {
  if (options.args.length > 1) throw new UsageError(`flanneld teardown takes no arguments, got ${JSON.stringify(options.args[1])}`);
  const recorded = await readSubnetFile(options.subnetFile);
  const failures: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      failures.push(`${what}: ${errorMessage(err)}`);
    }
  };
  if (!recorded) {
    process.stderr.write(
      `flanneld teardown: no subnet file at ${options.subnetFile}, so the Network is unknown: removing only the ` +
        'blackhole route, iptables rules and what the backends find without one; pass the --subnet-file flanneld ran with to remove its devices and routes too\n',
    );
  }
  for (const definition of backendDefinitions()) {
    const teardown = definition.teardown?.bind(definition);
    if (teardown) await step(`${definition.type} backend`, () => teardown(recorded?.network));
  }
  await step('blackhole routes', () => removeBlackholeRoutes());
  // FLANNEL-POSTRTG, FLANNEL-FWD and the jumps to them are known by name: no Network needed.
  await step('iptables rules', removeFlannelIptables);
  if (failures.length) throw new KernelError(`teardown incomplete: ${failures.join('; ')}`);
  const scope = recorded ? `for Network ${formatIpv4Net(recorded.network)}` : 'that needs no Network';
  process.stdout.write(`flanneld teardown: removed what flanneld created ${scope}; etcd and ${options.subnetFile} left as they are\n`);
  return 0;
}
