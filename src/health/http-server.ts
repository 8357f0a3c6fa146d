import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { FlannelError } from '../errors.js';
import { log } from '../log.js';

type Handler = () => Promise<{ status: number; body: string; contentType?: string }>;

/** A tiny HTTP server for /healthz and /metrics: GET only, fixed routes, nothing else. */
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

export function healthzRoute(isHealthy: () => boolean): Handler {
  return async () => (isHealthy() ? { status: 200, body: 'flanneld is running\n' } : { status: 503, body: 'flanneld is not ready yet\n' });
}

export function metricsRoute(registry: Registry): Handler {
  return async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType });
}
