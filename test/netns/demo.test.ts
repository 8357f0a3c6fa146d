import { execFile, spawn } from 'node:child_process';
import { access, readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { builtFile } from '../../testbed/built.js';

const run = promisify(execFile);
// What `npm run demo` runs once scripts/demo.sh has installed and built what was missing.
const DEMO = builtFile('testbed/demo.js');

interface DemoRun {
  readonly pid: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the demo to its end (bounded); with `interruptAt`, sends it SIGINT (a Ctrl-C) once stdout matches. */
function runDemo(interruptAt?: RegExp, timeoutMs = 60_000): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (interruptAt?.test(stdout) && child.signalCode === null) {
        interruptAt = undefined;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`demo still running after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ pid: child.pid!, code, stdout, stderr });
    });
  });
}

/** What a demo run could have left: its namespaces (their veths go with them), its work dir, processes using it. */
async function leftovers(demo: DemoRun): Promise<string[]> {
  const found: string[] = [];
  const namespaces = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);
  found.push(...namespaces.filter((ns) => ns.startsWith(`ft-${demo.pid}-`)).map((ns) => `namespace ${ns}`));
  // flanneld's subnet files and etcd's data are in the work dir, so a process still naming it is one of the demo's.
  const workDir = /^work dir: (\S+)/m.exec(demo.stdout)?.[1];
  if (!workDir) return [...found, 'no work dir printed'];
  if (await access(workDir).then(() => true, () => false)) found.push(`work dir ${workDir}`);
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(workDir)) found.push(`process ${pid}: ${cmdline.replaceAll('\0', ' ')}`);
  }
  return found;
}

describe('npm run demo (testbed/demo.ts)', () => {
  it('leases three subnets, pings every pair of containers across the overlay, and leaves nothing behind', async () => {
    const demo = await runDemo();
    expect(demo.stderr).toBe('');
    expect(demo.code).toBe(0);
    // `flanneld leases` lists one udp lease per host.
    const leaseRows = demo.stdout.split('\n').filter((l) => /^198\.19\.\d+\.0\/24 +198\.18\.0\.[123] +udp /.test(l));
    expect(leaseRows).toHaveLength(3);
    expect(demo.stdout.split('\n').filter((l) => / -> .*: ok /.test(l))).toHaveLength(6);
    expect(demo.stdout).toMatch(/^6 of 6 container pairs reachable over the flannel-ts udp overlay$/m);
    expect(await leftovers(demo)).toEqual([]);
  });

  it('a Ctrl-C while flanneld and etcd run stops it, exit 130, and cleans up just the same', async () => {
    const demo = await runDemo(/^h1: leased /m);
    expect(demo.code).toBe(130);
    expect(demo.stdout).toContain('SIGINT: stopping and cleaning up');
    expect(demo.stdout).not.toContain('container pairs reachable');
    expect(demo.stderr).toBe('');
    expect(await leftovers(demo)).toEqual([]);
  });
});
