import { chmod, mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { FileAccessError } from '../../src/errors.js';
import { writeFileAtomic } from '../../src/files/atomic-file.js';
import { useTempDir } from '../helpers/fixtures.js';

const dir = useTempDir('atomic-file');
const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('writeFileAtomic', () => {
  it('replaces the content and the mode by a rename: a reader of the old file still reads it whole', async () => {
    const path = dir.file('replace', 'subnet.env');
    await mkdir(dir.file('replace'));
    await writeFile(path, 'FLANNEL_SUBNET=198.19.1.1/24\n');
    await chmod(path, 0o600);
    const reader = await open(path, 'r');
    try {
      await writeFileAtomic(path, 'FLANNEL_SUBNET=198.19.2.1/24\n', 'subnet file');
      expect(await readFile(path, 'utf8')).toBe('FLANNEL_SUBNET=198.19.2.1/24\n');
      expect(await mode(path)).toBe(0o644 & ~process.umask());
      expect(await reader.readFile('utf8')).toBe('FLANNEL_SUBNET=198.19.1.1/24\n');
    } finally {
      await reader.close();
    }
    expect(await readdir(dir.file('replace'))).toEqual(['subnet.env']);
  });

  it('creates the directories it needs', async () => {
    const path = dir.file('new', 'run', 'flannel', 'subnet.env');
    await writeFileAtomic(path, 'x\n', 'subnet file');
    expect(await readFile(path, 'utf8')).toBe('x\n');
  });

  it('fails with one line when the target is a directory, leaving it as it was and no temporary file', async () => {
    const path = dir.file('isdir', 'subnet.env');
    await mkdir(path, { recursive: true });
    await writeFile(`${path}/kept`, 'kept\n');
    const failure = writeFileAtomic(path, 'new\n', 'subnet file');
    await expect(failure).rejects.toThrow(FileAccessError);
    await expect(failure).rejects.toThrow(`cannot write subnet file ${path}: EISDIR`);
    expect(await readdir(dir.file('isdir'))).toEqual(['subnet.env']);
    expect(await readFile(`${path}/kept`, 'utf8')).toBe('kept\n');
  });

  it('fails with one line when the temporary file cannot be written, leaving the old file as it was', async () => {
    const path = dir.file('blocked', 'subnet.env');
    await mkdir(dir.file('blocked'));
    await writeFile(path, 'old\n');
    await chmod(path, 0o600);
    // The writer's temporary name is taken by a directory, so writing it fails before any rename.
    await mkdir(`${path}.${process.pid}.tmp`);
    await expect(writeFileAtomic(path, 'new\n', 'subnet file')).rejects.toThrow(`cannot write subnet file ${path}: EISDIR`);
    expect(await readFile(path, 'utf8')).toBe('old\n');
    expect(await mode(path)).toBe(0o600);
  });
});
