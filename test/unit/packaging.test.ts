import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-info.js';

const run = promisify(execFile);

describe('npm package', () => {
  it('ships the daemon, the addon sources and the units, never tests, bench code or results', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: packageRoot() });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
    expect(files).toContain('dist/src/cli/flanneld.js');
    expect(files).toContain('dist/src/cli/mk-docker-opts.js');
    expect(files).toContain('binding.gyp');
    // The install step builds the fast path's BPF object from these.
    expect(files).toContain('native/bpf/flannel_udp.bpf.c');
    expect(files).toContain('native/bpf/build.sh');
    expect(files).toContain('contrib/systemd/flanneld.service');
    const allowed = /^(dist\/src\/|native\/|contrib\/|binding\.gyp$|README\.md$|package\.json$)/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
  });
});
