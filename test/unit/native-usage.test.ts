import { describe, expect, it } from 'vitest';
import { NativeAddonError } from '../../src/errors.js';
import { checkAbiVersion, loadNativeAddon, NATIVE_ABI_VERSION, type NativeDatapathOptions } from '../../src/datapath/native.js';

const addon = loadNativeAddon();

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
  ['more than 16 queues', { ...VALID, queues: 17 }],
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

  it('refuses an addon built from other sources with one line saying to rebuild it', () => {
    const stale = { abiVersion: NATIVE_ABI_VERSION - 1 };
    expect(() => checkAbiVersion(stale, '/x/flannel_datapath.node')).toThrow(NativeAddonError);
    expect(() => checkAbiVersion(stale, '/x/flannel_datapath.node')).toThrow(
      `native datapath addon /x/flannel_datapath.node has ABI version ${NATIVE_ABI_VERSION - 1}, this code needs ${NATIVE_ABI_VERSION}; rebuild with npm run build:native`,
    );
    expect(() => checkAbiVersion({}, '/x/flannel_datapath.node')).toThrow(/ABI version undefined/);
  });

  for (const [what, options] of BAD) {
    it(`refuses ${what} with a Usage line`, () => {
      let created: { close(): void } | undefined;
      try {
        expect(() => {
          created = new addon.Datapath(options as NativeDatapathOptions);
        }).toThrow(/^Usage: new Datapath\(/);
      } finally {
        created?.close(); // only if the check is broken: never leave a TUN behind
      }
    });
  }
});
