import { describe, expect, it } from 'vitest';
import { loadNativeAddon, type NativeDatapathOptions } from '../../src/datapath/native.js';

const addon = loadNativeAddon();

/** Each of these must be refused by the argument checks, before any TUN or socket is opened. */
const BAD: [string, unknown][] = [
  ['no options', undefined],
  ['tunName not a string', { tunName: 5 }],
  ['empty tunName', { tunName: '' }],
  ['tunName over 15 bytes', { tunName: 'ftusage-toolong1' }],
  ['negative localIp', { tunName: 'ftusage0', localIp: -1 }],
  ['fractional localIp', { tunName: 'ftusage0', localIp: 1.5 }],
  ['localIp over 32 bits', { tunName: 'ftusage0', localIp: 2 ** 32 }],
  ['port over 65535', { tunName: 'ftusage0', port: 70000 }],
  ['port as a string', { tunName: 'ftusage0', port: '8285' }],
  ['mtu below IPv4 minimum', { tunName: 'ftusage0', mtu: 10 }],
  ['tunIp NaN', { tunName: 'ftusage0', tunIp: Number.NaN }],
  ['no queues', { tunName: 'ftusage0', queues: 0 }],
  ['more than 16 queues', { tunName: 'ftusage0', queues: 17 }],
  ['fractional queues', { tunName: 'ftusage0', queues: 1.5 }],
];

describe('native addon argument checks', () => {
  it('loads from the package build directory', () => {
    expect(addon.abiVersion).toBe(1);
    expect(typeof addon.Datapath).toBe('function');
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
