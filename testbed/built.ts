import { join } from 'node:path';
import { packageRoot } from '../src/package-info.js';

/**
 * A file of the compiled package (`npm run build:ts` writes dist/), found from the package root so that it resolves
 * the same from source (vitest) and from dist/ (bench, demo). Child processes run these, as operators run the bins.
 */
export function builtFile(path: string): string {
  return join(packageRoot(), 'dist', path);
}

export const MK_DOCKER_OPTS = builtFile('src/cli/mk-docker-opts.js');
