import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { FlannelError } from '../errors.js';
import { log } from '../log.js';

type Handler = () => Promise<{ status: number; body: string; contentType?: string }>;

/** A tiny HTTP server for /healthz, /readyz and /metrics: GET only, fixed routes, nothing else. */
export async function serveHttp(host: string, port: number, routes: Record<string, Handler>): Promise<Server> {
  const server = createServer((req, res) => {
    const handler = req.method === 'GET' ? routes[(req.url ?? '').split('?')[0]] : undefined;
    if (!handler) {
      res.writeHead(404).end('not found\n');
      return;
    }
    handler().then(
      ({ status, body, contentType }) => res.writeHead(status, { 'content-type': contentType ?? 'text/plain' }).end(body),
      (err) => res.writeHead(500).end(`${err}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new FlannelError(`cannot listen on ${host}:${port}: ${err.message}`)));
    server.listen(port, host, resolve);
  });
  server.unref();
  log.info({ event: 'http-listening', host, port, paths: Object.keys(routes) }, 'http server listening');
  return server;
}

/** A verdict and, when negative, why; what /healthz and /readyz report. */
export interface HealthVerdict {
  readonly ok: boolean;
  readonly reason?: string;
}

/**
 * `/healthz`, liveness, with flannel's text: 200 `flanneld is running` while the process and its loops turn. A unit's
 * watchdog or a kubelet liveness probe restarts flanneld when this fails.
 */
export function healthzRoute(check: () => HealthVerdict): Handler {
  return async () => {
    const { ok, reason } = check();
    return ok ? { status: 200, body: 'flanneld is running\n' } : { status: 503, body: `flanneld is not running: ${reason}\n` };
  };
}

/**
 * `/readyz`, readiness, with flannel's texts: 200 `flanneld is ready` once the lease is held and the datapath runs,
 * else 503 `flanneld is not ready yet`, followed here by the reason. Probes that gate traffic use this one.
 */
export function readyzRoute(check: () => HealthVerdict): Handler {
  return async () => {
    const { ok, reason } = check();
    return ok ? { status: 200, body: 'flanneld is ready\n' } : { status: 503, body: `flanneld is not ready yet${reason ? `: ${reason}` : ''}\n` };
  };
}

export function metricsRoute(registry: Registry): Handler {
  return async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType });
}
