import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const SCRIPT = join(import.meta.dirname, '..', 'fixtures', 'backend-teardown.mjs');

/** Runs the `type` backend's teardown(network) inside namespace `ns` (what `flanneld teardown` calls). */
export async function runBackendTeardown(ns: string, type: string, network: string): Promise<void> {
  await promisify(execFile)('ip', ['netns', 'exec', ns, process.execPath, SCRIPT, type, network]);
}
