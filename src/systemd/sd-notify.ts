import { execFile } from 'node:child_process';
import { errorMessage } from '../errors.js';
import { log } from '../log.js';

/**
 * Tells systemd `READY=1` for a `Type=notify` unit. Node cannot send on a unix datagram socket, so this runs
 * `systemd-notify`. `--pid` makes the message carry flanneld's own PID (and MAINPID=): systemd attributes it to
 * the unit even after the short-lived helper has exited, so the helper need not wait for systemd to process it
 * (`--no-block`; older systemd-notify without that option is retried without it).
 */
function sdNotifyReady(pid: number = process.pid, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const args = ['--ready', `--pid=${pid}`];
  const notify = (extra: string[]) =>
    new Promise<void>((resolve, reject) => {
      execFile('systemd-notify', [...args, ...extra], { env, timeout: 10_000 }, (err, _stdout, stderr) => {
        if (err) reject(Object.assign(err, { stderr: String(stderr) }));
        else resolve();
      });
    });
  return notify(['--no-block']).catch((err: Error & { stderr?: string }) => {
    if (/unrecognized option|unknown option/i.test(err.stderr ?? '')) return notify([]);
    throw err;
  });
}

/**
 * Under systemd (NOTIFY_SOCKET set), signals readiness once the subnet file has been written: units ordered after
 * flanneld (docker with mk-docker-opts) may read it from then on — flannel's contract. Returns whether it is armed.
 */
export function notifyReadyOnSubnetFile(
  daemon: { once(event: 'subnet-file-written', listener: (path: string) => void): unknown },
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (!env.NOTIFY_SOCKET) return false;
  daemon.once('subnet-file-written', (path: string) => {
    sdNotifyReady(process.pid, env).then(
      () => log.info({ event: 'sd-notify-ready', path }, 'notified systemd: READY=1'),
      (err: Error & { stderr?: string }) =>
        log.warn({ event: 'sd-notify-failed' }, `cannot notify systemd of readiness (systemd-notify): ${(err.stderr ?? '').trim() || errorMessage(err)}`),
    );
  });
  return true;
}
