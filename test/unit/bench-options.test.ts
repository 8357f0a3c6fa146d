import { describe, expect, it } from 'vitest';
import { BenchUsageError, parseBenchOptions } from '../../bench/options.js';

describe('npm run bench flags', () => {
  it('defaults to 3 rounds of every path, unpublished', () => {
    expect(parseBenchOptions([])).toEqual({ rounds: 3, paths: undefined, publish: false, from: undefined, flannelBin: undefined, verbose: false });
  });

  it('takes --rounds, --paths (over BENCH_PATHS), --flannel-bin and BENCH_VERBOSE', () => {
    const o = parseBenchOptions(['--rounds', '5', '--paths', 'bare-lan, kernel-vxlan', '--flannel-bin', '/opt/flanneld'], { BENCH_PATHS: 'naive-relay', BENCH_VERBOSE: '1' });
    expect(o).toMatchObject({ rounds: 5, paths: ['bare-lan', 'kernel-vxlan'], flannelBin: '/opt/flanneld', verbose: true });
    expect(parseBenchOptions([], { BENCH_PATHS: 'naive-relay,flannel-ts-udp' }).paths).toEqual(['naive-relay', 'flannel-ts-udp']);
  });

  it('refuses bad input with one line each', () => {
    const refused = (argv: string[], pattern: RegExp) => expect(() => parseBenchOptions(argv)).toThrow(pattern);
    refused(['--rounds', 'two'], /--rounds must be a whole number/);
    refused(['--rounds', '0'], /--rounds must be a whole number/);
    refused(['--publish', '--rounds', '2'], /--publish needs at least 3 rounds/);
    refused(['--from', 'run.json'], /use it with --publish/);
    refused(['--paths', ','], /names no path/);
    refused(['--fast'], /Unknown option '--fast'/);
    expect(() => parseBenchOptions(['--fast'])).toThrow(BenchUsageError);
  });

  it('publishes an earlier run with --publish --from, whatever --rounds says', () => {
    expect(parseBenchOptions(['--publish', '--from', 'run.json'])).toMatchObject({ publish: true, from: 'run.json' });
  });
});
