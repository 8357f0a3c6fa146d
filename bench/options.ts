import { parseArgs } from 'node:util';
import { DEFAULT_ROUNDS, MIN_PUBLISH_ROUNDS } from './method.js';

export interface BenchOptions {
  readonly rounds: number;
  /** Path names to measure (--paths or BENCH_PATHS); all when absent. */
  readonly paths?: readonly string[];
  /** Also update the committed reference (bench/results/latest.*) and the README's table. */
  readonly publish: boolean;
  /** With --publish: publish this earlier run's JSON instead of measuring. */
  readonly from?: string;
  /** Another flanneld executable, measured with the udp backend beside ours. */
  readonly flannelBin?: string;
  readonly verbose: boolean;
}

export class BenchUsageError extends Error {}

export const USAGE = `usage: npm run bench -- [--rounds N] [--paths a,b,...] [--flannel-bin PATH] [--publish [--from RUN.json]]`;

/** `npm run bench -- ...` flags, with BENCH_PATHS and BENCH_VERBOSE from the environment. */
export function parseBenchOptions(argv: readonly string[], env: NodeJS.ProcessEnv = {}): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        rounds: { type: 'string' },
        paths: { type: 'string' },
        publish: { type: 'boolean', default: false },
        from: { type: 'string' },
        'flannel-bin': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new BenchUsageError(`${err instanceof Error ? err.message : err}\n${USAGE}`);
  }
  const rounds = values.rounds === undefined ? DEFAULT_ROUNDS : Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new BenchUsageError(`--rounds must be a whole number from 1 to 50, got ${values.rounds}`);
  if (values.publish && !values.from && rounds < MIN_PUBLISH_ROUNDS) throw new BenchUsageError(`--publish needs at least ${MIN_PUBLISH_ROUNDS} rounds, so the published ranges mean something`);
  if (values.from && !values.publish) throw new BenchUsageError('--from names a run to publish; use it with --publish');
  const list = values.paths ?? env.BENCH_PATHS;
  const paths = list?.split(',').map((p) => p.trim()).filter(Boolean);
  if (list !== undefined && !paths?.length) throw new BenchUsageError('--paths (or BENCH_PATHS) names no path');
  return { rounds, paths, publish: values.publish ?? false, from: values.from, flannelBin: values['flannel-bin'], verbose: Boolean(env.BENCH_VERBOSE) };
}
