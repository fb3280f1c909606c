/**
 * Telemetry tests' view of a real sidecar: the compiled supervisor and engine in explicit mode on
 * loopback (no capture, so no root), every port 0, started by the supervisor tests' helper; plus
 * small real servers: an app that records the headers it receives, and a client. Every process
 * is stopped by PID.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request, startSupervisor } from '../supervisor/helpers.js';
import type { Reply, RunningSupervisor } from '../supervisor/helpers.js';

export const PROXY_BIN = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));

/** The supervised engine's entry, exactly what the bin forks. */
export const ENGINE_ENTRY = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));

export type Sidecar = RunningSupervisor;

/**
 * Starts the real supervisor with the real engine (what the bin runs) with `env` on top of the
 * explicit-mode loopback defaults of the supervisor tests' helper; resolves once it is ready.
 */
export function startSidecar(env: Readonly<Record<string, string>>): Promise<Sidecar> {
  return startSupervisor({ engine: ENGINE_ENTRY, env });
}

/** One GET to a loopback URL with these headers (no keep-alive). */
export function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const u = new URL(url);
  return request(Number(u.port), `${u.pathname}${u.search}`, { headers });
}

export interface RecordingApp {
  readonly port: number;
  /** Headers of every request the app received, in order. */
  readonly received: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/**
 * An upstream app that records request headers and answers 200 `ok`; `/status/NNN` answers NNN.
 * With `forwardTo`, it calls that URL for each request, copying the trace headers the way an
 * instrumented app does, and answers with the nested response.
 */
export async function startRecordingApp(forwardTo?: () => string): Promise<RecordingApp> {
  const received: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    received.push(req.headers);
    req.resume();
    req.on('end', () => {
      const m = /^\/status\/(\d{3})$/.exec(req.url ?? '');
      if (forwardTo !== undefined) {
        const h: Record<string, string> = {};
        for (const k of ['traceparent', 'tracestate']) {
          const v = req.headers[k];
          if (typeof v === 'string') h[k] = v;
        }
        get(forwardTo(), h).then(
          (r) => res.writeHead(r.status).end(r.body),
          () => res.writeHead(599).end(),
        );
        return;
      }
      res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A loopback port that was free a moment ago: connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Sums the samples of a series on the sidecar's /metrics (labels: a subset to match). */
export { metric } from '../supervisor/helpers.js';
