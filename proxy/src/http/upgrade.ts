/**
 * Upgrade (WebSocket) tunnelling: the request goes upstream through the origin's pool with
 * undici's `upgrade` option; on 101 the proxy writes the upstream's answer to the client and
 * splices the two raw sockets. Any other answer is relayed as a plain response, then closed.
 */
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Logger } from '../log.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { splice } from '../tcp/relay.js';
import { filterRequestHeaders, filterResponseHeaders } from './headers.js';
import type { Pools } from './pools.js';

interface TunnelDeps {
  readonly pools: Pools;
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
}

function head(status: number, statusText: string, flat: readonly string[]): string {
  let s = `HTTP/1.1 ${status} ${statusText || http.STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < flat.length; i += 2) s += `${flat[i]}: ${flat[i + 1]}\r\n`;
  return `${s}\r\n`;
}

class UpgradeHandler implements Dispatcher.DispatchHandler {
  private finished = false;
  constructor(
    private readonly client: Socket,
    private readonly early: Buffer,
    private readonly conn: ConnectionInfo,
    private readonly deps: TunnelDeps,
    private readonly start: number,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.client.destroyed) abort(new Error('client went away'));
    else this.client.once('close', () => abort(new Error('client went away')));
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, upstream: Socket): void {
    const flat: string[] = [];
    const raw = rawHeaders ?? [];
    for (let i = 0; i < raw.length; i++) flat.push(String(raw[i]));
    this.client.write(head(statusCode, 'Switching Protocols', flat));
    if (this.early.length > 0) upstream.write(this.early);
    this.record(statusCode);
    splice(this.client, upstream, () => undefined);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], _resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true;
    const flat: string[] = [];
    filterResponseHeaders(rawHeaders, flat);
    flat.push('connection', 'close');
    this.client.write(head(statusCode, statusText, flat));
    this.record(statusCode);
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.client.write(chunk);
  }

  onComplete(): void {
    this.client.end();
  }

  onError(err: Error): void {
    if (this.finished) {
      this.client.destroy();
      return;
    }
    const r = rescue(err, this.conn.destinationKey);
    this.deps.log.warn(
      {
        event: 'upstream_error',
        code: r.code,
        status: r.status,
        upstream: this.conn.destinationKey,
        upgrade: true,
      },
      r.error.message,
    );
    this.record(r.status);
    const body = `${r.error.message}\n`;
    this.client.end(
      head(r.status, '', [
        ERROR_HEADER,
        r.code,
        'content-type',
        'text/plain',
        'content-length',
        String(Buffer.byteLength(body)),
        'connection',
        'close',
      ]) + body,
    );
  }

  private record(status: number): void {
    if (this.finished) return;
    this.finished = true;
    const m = this.conn.peer ?? this.deps.metrics;
    m.requests(status).inc();
    m.duration.observe((performance.now() - this.start) / 1000);
  }
}

export function tunnel(
  req: IncomingMessage,
  client: Socket,
  early: Buffer,
  conn: ConnectionInfo,
  deps: TunnelDeps,
): void {
  const headers: string[] = [];
  const info = { hasBody: false, upgrade: undefined as string | undefined };
  filterRequestHeaders(req.rawHeaders, headers, info);
  const start = performance.now();
  client.on('error', () => client.destroy());
  deps.pools.get(conn.destinationKey).dispatch(
    {
      path: req.url as string,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      upgrade: info.upgrade ?? 'websocket',
      body: null,
    },
    new UpgradeHandler(client, early, conn, deps, start),
  );
}
