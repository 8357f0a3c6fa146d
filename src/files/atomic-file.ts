import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FileAccessError } from '../errors.js';

function accessError(what: string, path: string, err: unknown): FileAccessError {
  return new FileAccessError(`cannot write ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
}

/**
 * Writes a file other programs read (the subnet file, docker's options) so that a reader never sees half of it:
 * a temporary file in the same directory, renamed over the target. The directory is created if needed. The file
 * gets mode 0644 (less the umask), whatever mode the one it replaces had. On failure the temporary file is removed
 * and the target is as it was.
 */
export async function writeFileAtomic(path: string, text: string, what: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw accessError(what, path, err);
  }
}

/** Checks up front that `path` could be written, so bad input fails before anything else is touched. */
export async function checkWritable(path: string, what: string): Promise<void> {
  const probe = `${path}.${process.pid}.probe`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(probe, '');
    await unlink(probe);
  } catch (err) {
    throw accessError(what, path, err);
  }
}
