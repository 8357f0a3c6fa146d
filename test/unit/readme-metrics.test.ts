import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-info.js';

/** Every metric name the sources emit: a quoted `flannel_…` name, as metrics.ts and the backends pass them. */
function emittedMetricNames(): string[] {
  const src = join(packageRoot(), 'src');
  const names = new Set<string>();
  for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
    for (const [, name] of readFileSync(join(src, file), 'utf8').matchAll(/['`](flannel_[a-z_]+)['`]/g)) names.add(name);
  }
  return [...names].sort();
}

/** The names in the first column of the README's metrics table (`| metric | meaning |`). */
function documentedMetricNames(): string[] {
  const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('| metric | meaning |')).split('\n\n')[0];
  return [...table.matchAll(/`(flannel_[a-z_]+)[{`]/g)].map(([, name]) => name);
}

describe('README metrics table', () => {
  it('documents every metric the daemon and its backends emit', () => {
    const emitted = emittedMetricNames();
    // The scan finds what it must: the daemon's own metrics and the udp engine's.
    expect(emitted).toEqual(expect.arrayContaining(['flannel_lease_renewals_total', 'flannel_datapath_read_errors_total', 'flannel_fastpath_enabled']));
    const documented = new Set(documentedMetricNames());
    expect(emitted.filter((name) => !documented.has(name))).toEqual([]);
  });
});
