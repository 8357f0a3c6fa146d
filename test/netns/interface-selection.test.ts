import { beforeAll, describe, expect, it } from 'vitest';
import type { InterfaceSelection } from '../../src/iface/external-interface.js';
import { builtFile } from '../../testbed/built.js';
import { etcdOnSwitch } from '../../testbed/etcd.js';
import { FlanneldProcess, flanneldArgs, runFlanneld } from '../../testbed/flanneld.js';
import { SWITCH_IP } from '../../testbed/netns.js';
import { useEtcd, useTempDir, useTestbed } from '../helpers/fixtures.js';

// A host with two interfaces: eth0 (198.18.0.1) on the LAN with the default route, and cbr0 (198.18.3.1) leading
// to a router (198.18.3.2) behind which 198.18.44.0/24 lies; 198.18.66.0/24 is unreachable.
const bed = useTestbed('iface');
const etcd = useEtcd(etcdOnSwitch(bed));
const dir = useTempDir('iface');
let host: string;

beforeAll(async () => {
  host = await bed.addHost('h', '198.18.0.1');
  await bed.ip(host, 'route', 'add', 'default', 'via', SWITCH_IP);
  await bed.addContainer(host, 'r', '198.18.3.1/24', '198.18.3.2');
  await bed.ip(host, 'route', 'add', '198.18.44.0/24', 'via', '198.18.3.2');
  // Somewhere the host cannot reach: `ip route get` fails for it.
  await bed.ip(host, 'route', 'add', 'blackhole', '198.18.66.0/24');
});

/** Runs the real findExternalInterface inside the host namespace (real links, real RTM_GETROUTE). */
async function chosen(selection: Partial<InterfaceSelection>) {
  const script = `
    const { findExternalInterface } = await import(${JSON.stringify(builtFile('src/iface/external-interface.js'))});
    const { formatIpv4 } = await import(${JSON.stringify(builtFile('src/ip/ipv4.js'))});
    const i = await findExternalInterface(JSON.parse(process.argv[1]));
    console.log(JSON.stringify({ name: i.name, address: formatIpv4(i.address), publicIp: formatIpv4(i.publicIp) }));`;
  const full = { ifaces: [], ifaceRegexes: [], canReach: '', publicIp: '', ...selection };
  const { stdout } = await bed.exec(host, [process.execPath, '--input-type=module', '-e', script, JSON.stringify(full)]);
  return JSON.parse(stdout) as { name: string; address: string; publicIp: string };
}

describe('choosing the external interface on a real host', () => {
  it('nothing asked: the default route\'s interface', async () => {
    expect(await chosen({})).toEqual({ name: 'eth0', address: '198.18.0.1', publicIp: '198.18.0.1' });
  });

  it('--iface-regex by name and by address', async () => {
    expect(await chosen({ ifaceRegexes: ['^cbr'] })).toEqual({ name: 'cbr0', address: '198.18.3.1', publicIp: '198.18.3.1' });
    expect(await chosen({ ifaceRegexes: ['^wlan', '^198\\.18\\.3\\.'] })).toMatchObject({ name: 'cbr0', address: '198.18.3.1' });
  });

  it('--iface-can-reach: the interface and source address of the kernel\'s route', async () => {
    expect(await chosen({ canReach: '198.18.44.9' })).toEqual({ name: 'cbr0', address: '198.18.3.1', publicIp: '198.18.3.1' });
    expect(await chosen({ canReach: '198.18.77.7' })).toMatchObject({ name: 'eth0', address: '198.18.0.1' });
  });

  it('--public-ip held by an interface picks that one, not the default route\'s', async () => {
    expect(await chosen({ publicIp: '198.18.3.1' })).toEqual({ name: 'cbr0', address: '198.18.3.1', publicIp: '198.18.3.1' });
  });

  it('--public-ip held by no interface (NAT): the default route\'s interface, advertising the public IP', async () => {
    expect(await chosen({ publicIp: '198.18.250.5' })).toEqual({ name: 'eth0', address: '198.18.0.1', publicIp: '198.18.250.5' });
  });

  it('the chosen interface reaches the lease: its PublicIP is what was picked', async () => {
    const prefix = await etcd.network('{"Network":"198.19.0.0/16","Backend":{"Type":"alloc"}}');
    const leaseOf = async (args: string[], file: string) => {
      const d = new FlanneldProcess([...flanneldArgs({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix, subnetFile: dir.file(file) }), ...args], { netns: host });
      try {
        const subnet = String((await d.waitForEvent('lease-acquired')).subnet).replace('/', '-');
        return { value: JSON.parse((await etcd.get(`${prefix}/subnets/${subnet}`))!), log: d.stderr };
      } finally {
        await d.stop('SIGKILL');
      }
    };
    const reach = await leaseOf(['--iface-can-reach', '198.18.44.9'], 'reach.env');
    expect(reach.value.PublicIP).toBe('198.18.3.1');
    expect(reach.log).toContain('chosen by --iface-can-reach 198.18.44.9');
    const nat = await leaseOf(['--public-ip', '198.18.250.5'], 'nat.env');
    expect(nat.value.PublicIP).toBe('198.18.250.5');
    expect(nat.log).toMatch(/using interface eth0 \(198\.18\.0\.1.*no interface holds --public-ip 198\.18\.250\.5/);
  });

  it('asked-for interfaces that do not exist, or a bad regex: one line, exit 1, before etcd is contacted', async () => {
    const flags = flanneldArgs({ etcdEndpoints: `http://${SWITCH_IP}:1`, subnetFile: dir.file('bad.env') });
    const flanneld = (args: string[]) => runFlanneld([...flags, ...args], { netns: host });
    const missing = await flanneld(['--iface', 'eth7', '--iface-regex', '^wlan', '--iface-can-reach', '198.18.66.1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^flanneld: no interface matches --iface eth7 \(no such interface\), --iface-regex \^wlan, --iface-can-reach 198\.18\.66\.1 \(no route: .*EINVAL\); interfaces: lo \[127\.0\.0\.1\], .*\n$/,
    );
    expect(missing.stderr).toContain('eth0 [198.18.0.1]');
    expect(missing.stderr).toContain('cbr0 [198.18.3.1]');
    const invalid = await flanneld(['--iface-regex', 'eth(']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^flanneld: --iface-regex "eth\(" is not a valid regular expression: .+\n$/);
  });
});
