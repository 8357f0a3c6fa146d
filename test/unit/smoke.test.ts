import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';

describe('native addon', () => {
  it('loads the built addon', () => {
    const require = createRequire(import.meta.url);
    const addon = require('../../build/Release/flannel_datapath.node');
    expect(addon.abiVersion).toBe(1);
    expect(typeof addon.Datapath).toBe("function");
  });
});
