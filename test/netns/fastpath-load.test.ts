import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { FastPathUnavailableError } from '../../src/errors.js';
import { UdpFastPath, fastPathObject } from '../../src/datapath/udp-fastpath.js';
import { packageRoot } from '../../src/package-info.js';
import { useTempDir } from '../helpers/fixtures.js';

// How the fast path's BPF object is built at install time and what happens when it cannot be: no clang, a compile
// error, a program the kernel's verifier refuses. Each must end in one line saying why (flanneld logs it and runs
// the engine alone, or stops with --udp-fastpath=on).
const run = promisify(execFile);
const BUILD = join(packageRoot(), 'native', 'bpf', 'build.sh');
const SOURCE = join(packageRoot(), 'native', 'bpf', 'flannel_udp.bpf.c');

const tmp = useTempDir('fastpath');
let dir: string;

beforeAll(async () => {
  dir = tmp.path;
  await mkdir(join(dir, 'Release'));
});

const build = (source: string, out: string, env: Record<string, string> = {}) =>
  run('sh', [BUILD, source, out], { env: { ...process.env, ...env } });

describe('fast path BPF object', () => {
  it('builds from C with clang, and the kernel loads it', async () => {
    const out = join(dir, 'Release', 'flannel_udp.bpf.o');
    await build(SOURCE, out);
    expect(fastPathObject(dir)).toEqual({ path: out });
    const fastPath = UdpFastPath.load({ objectPath: out });
    fastPath.close();
  });

  it('without clang, leaves the reason where the object would be, and the build still succeeds', async () => {
    const out = join(dir, 'Release', 'flannel_udp.bpf.o');
    await build(SOURCE, out, { CLANG: '/nonexistent/clang' });
    expect(existsSync(out)).toBe(false);
    const found = fastPathObject(dir);
    expect(found).toEqual({ unavailable: expect.stringMatching(/^clang was not installed when flannel-ts was built/) });
    expect((found as { unavailable: string }).unavailable).not.toContain('\n');
  });

  it('with a compile error, says what clang said on one line', async () => {
    const source = join(dir, 'broken.bpf.c');
    await writeFile(source, 'int x = ;\n');
    const out = join(dir, 'broken.o');
    await build(source, out);
    expect(existsSync(out)).toBe(false);
    expect((await readFile(`${out}.unavailable`, 'utf8')).trim()).toMatch(/^clang could not build the fast path's BPF object: .*error: expected expression$/);
  });

  it('reports the verifier verdict on a program the kernel refuses', async () => {
    const source = join(dir, 'refused.bpf.c');
    // Reads the packet without checking its length: the verifier must say no.
    await writeFile(
      source,
      [
        '#include <linux/bpf.h>',
        '#include <bpf/bpf_helpers.h>',
        'SEC("tc") int flannel_egress(struct __sk_buff *skb) { return *(int *)(long)skb->data; }',
        'SEC("tc") int flannel_ingress(struct __sk_buff *skb) { return 0; }',
        'char LICENSE[] SEC("license") = "GPL";',
      ].join('\n'),
    );
    const out = join(dir, 'refused.o');
    await build(source, out);
    let error: unknown;
    try {
      UdpFastPath.load({ objectPath: out });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FastPathUnavailableError);
    expect((error as Error).message).toMatch(/^loading the fast path's BPF programs \(.*outside of the packet\) failed: EACCES \(Permission denied\)$/);
    // The addon's error carries the errno and the call, as every native error does, and so does ours.
    expect((error as Error).cause).toMatchObject({ code: 'EACCES', syscall: 'bpf(BPF_PROG_LOAD)' });
    expect(error).toMatchObject({ code: 'EACCES', errno: 13, syscall: 'bpf(BPF_PROG_LOAD)' });
  });

  it('refuses a file that is not a BPF object, saying which', () => {
    expect(() => UdpFastPath.load({ objectPath: SOURCE })).toThrow(/^cannot open BPF object .*flannel_udp\.bpf\.c: .*not a proper ELF object/);
  });
});
