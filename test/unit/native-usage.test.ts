import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { NativeAddonError } from '../../src/errors.js';
import { useTempDir } from '../helpers/fixtures.js';
import { loadNativeAddon, MAX_QUEUES, NATIVE_ABI_VERSION, type NativeDatapathOptions } from '../../src/datapath/native.js';

const addon = loadNativeAddon();
const run = promisify(execFile);
const dir = useTempDir('stand-in-addon');

/**
 * Compiles test/fixtures/stand-in-addon.c into `<buildDir>/Release/flannel_datapath.node`, exporting `abiVersion` =
 * `abi` (none when undefined), the way node-gyp lays out the real one. Returns the build directory.
 */
async function standInAddon(name: string, abi: number | undefined): Promise<string> {
  const buildDir = dir.file(name);
  await mkdir(`${buildDir}/Release`, { recursive: true });
  const source = fileURLToPath(new URL('../fixtures/stand-in-addon.c', import.meta.url));
  const define = abi === undefined ? [] : [`-DABI_VERSION=${abi}`];
  await run('cc', ['-shared', '-fPIC', '-I/usr/include/node', ...define, source, '-o', `${buildDir}/Release/flannel_datapath.node`]);
  return buildDir;
}

/** Valid in every field: each case below breaks exactly one. The name is never created (each case must throw first). */
const VALID: NativeDatapathOptions = { tunName: 'ftusage0', localIp: 0, port: 8285, tunIp: 0, mtu: 1472, antiSpoofing: true, offload: false, queues: 1 };

/** Each of these must be refused by the argument checks, before any TUN or socket is opened. */
const BAD: [string, unknown][] = [
  ['no options', undefined],
  ['tunName not a string', { ...VALID, tunName: 5 }],
  ['empty tunName', { ...VALID, tunName: '' }],
  ['tunName over 15 bytes', { ...VALID, tunName: 'ftusage-toolong1' }],
  ['negative localIp', { ...VALID, localIp: -1 }],
  ['fractional localIp', { ...VALID, localIp: 1.5 }],
  ['localIp over 32 bits', { ...VALID, localIp: 2 ** 32 }],
  ['port over 65535', { ...VALID, port: 70000 }],
  ['port as a string', { ...VALID, port: '8285' }],
  ['mtu below IPv4 minimum', { ...VALID, mtu: 10 }],
  ['tunIp NaN', { ...VALID, tunIp: Number.NaN }],
  ['no queues', { ...VALID, queues: 0 }],
  ['more than MAX_QUEUES queues', { ...VALID, queues: MAX_QUEUES + 1 }],
  ['fractional queues', { ...VALID, queues: 1.5 }],
  ['antiSpoofing not a boolean', { ...VALID, antiSpoofing: 1 }],
  ['offload as a string', { ...VALID, offload: 'false' }],
  // The addon has no defaults: a forgotten option is an error, never a value of its own choosing.
  ...(Object.keys(VALID) as (keyof NativeDatapathOptions)[]).map((key): [string, unknown] => {
    const { [key]: _left, ...rest } = VALID;
    return [`a missing ${key}`, rest];
  }),
];

describe('native addon argument checks', () => {
  it('loads from the package build directory, at the ABI version this code speaks', () => {
    expect(addon.abiVersion).toBe(NATIVE_ABI_VERSION);
    expect(typeof addon.Datapath).toBe('function');
  });

  it('refuses to load an addon built from other sources, with one line saying to rebuild it', async () => {
    const stale = await standInAddon('stale', NATIVE_ABI_VERSION - 1);
    const file = `${stale}/Release/flannel_datapath.node`;
    const line = `native datapath addon ${file} has ABI version ${NATIVE_ABI_VERSION - 1}, this code needs ${NATIVE_ABI_VERSION}; rebuild with npm run build:native`;
    expect(() => loadNativeAddon(stale)).toThrow(NativeAddonError);
    // Refused on every call: a refused addon is never cached for the next caller.
    expect(() => loadNativeAddon(stale)).toThrow(line);
    const unversioned = await standInAddon('unversioned', undefined);
    expect(() => loadNativeAddon(unversioned)).toThrow(/ABI version undefined, this code needs/);
    // The same stand-in at our version loads: the check is what refused the others.
    expect(loadNativeAddon(await standInAddon('current', NATIVE_ABI_VERSION)).abiVersion).toBe(NATIVE_ABI_VERSION);
  });

  it('takes at most MAX_QUEUES queues, the bound --queues has', () => {
    // The addon prints its bound from kMaxQueues (native/engine.h): the line names the bound the engine enforces.
    expect(refusal({ ...VALID, queues: MAX_QUEUES + 1 }).endsWith(`queues: 1..${MAX_QUEUES} })`)).toBe(true);
  });

  for (const [what, options] of BAD) {
    it(`refuses ${what} with a Usage line`, () => {
      expect(refusal(options)).toMatch(/^Usage: new Datapath\(/);
    });
  }
});

/** The message `new Datapath(options)` throws. One it creates anyway (a broken check) is closed: never a TUN left behind. */
function refusal(options: unknown): string {
  let created: { close(): void } | undefined;
  try {
    created = new addon.Datapath(options as NativeDatapathOptions);
  } catch (err) {
    return (err as Error).message;
  } finally {
    created?.close();
  }
  throw new Error('new Datapath accepted the options');
}
