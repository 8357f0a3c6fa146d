import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { EtcdServer, type EtcdServerOptions } from '../../testbed/etcd.js';
import { FlanneldProcess, type FlanneldProcessOptions } from '../../testbed/flanneld.js';
import { Testbed } from '../../testbed/netns.js';
import { makeTempDir } from '../../testbed/tempdir.js';

const run = promisify(execFile);

// Fixtures for the enclosing test file or describe block: call them at its top level. Each registers its own
// set-up and tear-down hooks, so a failing test still leaves nothing behind.

/**
 * A real etcd of its own for the enclosing file or describe block, launched before its first test and stopped after
 * its last. Tests sharing it take their keys from `etcd.network()`, so none sees another's; a test that kills and
 * relaunches it affects only its own file.
 */
export function useEtcd(opts?: EtcdServerOptions): EtcdServer {
  const etcd = new EtcdServer(opts);
  beforeAll(() => etcd.launch());
  afterAll(() => etcd.stop());
  return etcd;
}

/**
 * Network-namespace hosts for the enclosing file or describe block (`ft-<pid>-<tag>-…`): the switch is set up before
 * its first test; every namespace, veth and process it made is removed after its last.
 */
export function useTestbed(tag: string): Testbed {
  const bed = new Testbed(tag);
  beforeAll(() => bed.setUp());
  afterAll(() => bed.cleanup());
  return bed;
}

export interface TempDir {
  /** The directory; valid once the file's tests have started. */
  readonly path: string;
  /** A path inside it. */
  file(...names: string[]): string;
}

/** A fresh directory under the system temp dir (`ft-<pid>-<tag>-…`, see makeTempDir), removed with its contents after the last test. */
export function useTempDir(tag: string): TempDir {
  let path: string | undefined;
  beforeAll(async () => {
    path = await makeTempDir(tag);
  });
  afterAll(async () => {
    if (path) await rm(path, { recursive: true, force: true });
  });
  const dir: TempDir = {
    get path() {
      if (!path) throw new Error('the temp dir is made before the first test; use it inside a test or hook');
      return path;
    },
    file: (...names) => join(dir.path, ...names),
  };
  return dir;
}

/**
 * Starts flanneld processes (the built CLI); any still running after its test is killed, pass or fail. After the
 * last test, this machine's own firewall must hold no flanneld rule: those started outside a test-bed namespace run
 * without forward rules (FlanneldProcess) and no ip-masq, so one there is a leak.
 */
export function useFlanneld(): (args: string[], opts?: FlanneldProcessOptions) => FlanneldProcess {
  const started: FlanneldProcess[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((d) => d.stop('SIGKILL').catch(() => undefined)));
  });
  afterAll(async () => {
    const leaked = (await machineIptablesRules()).filter((line) => /flanneld|FLANNEL/.test(line));
    if (leaked.length > 0) throw new Error(`flanneld rules left in this machine's own iptables:\n${leaked.join('\n')}`);
  });
  return (args, opts) => {
    const d = new FlanneldProcess(args, opts);
    started.push(d);
    return d;
  };
}

async function machineIptablesRules(): Promise<string[]> {
  const { stdout } = await run('iptables-save', []);
  return stdout.split('\n');
}
