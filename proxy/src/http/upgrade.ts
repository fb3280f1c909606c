/**
 * Upgrade (WebSocket) tunnelling, the innermost step of an Upgrade request that went through the
 * listener's layers like any request (authorization, rate limit, route timeouts, telemetry, the
 * mesh's identity header). The request goes upstream through the same dispatchers as every other
 * request (`deps.pools.get(key, ctx)`: outbound, the mesh's endpoint choice, circuit breaker and
 * mTLS tunnel) with the `upgrade` option (http/dispatch.ts). On 101 the proxy writes the upstream's answer to
 * the client and splices the two raw sockets; the request is over for the layers then (spans,
 * access log, timers). Any other answer is relayed as a plain response through `ctx.response`, then
 * the connection is closed (the HTTP parser let go of it when it saw the upgrade).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { ClientAbortedError } from '../errors.js';
import type { ProxyError } from '../errors.js';
import { rescue } from '../rescue.js';
import { splice } from '../tcp/relay.js';
import type { DispatchHandler } from './dispatch.js';
import type { ForwardDeps } from './forward.js';
import { filterResponseHeaders } from './headers.js';
import type { Exchange, RequestContext, UpgradeRequest } from './layer.js';
import { recordRequest, writeErrorResponse } from './local.js';

const CLIENT_GONE = new Error('client went away');

function head(status: number, statusText: string, flat: readonly string[]): string {
  let s = `HTTP/1.1 ${status} ${statusText || http.STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < flat.length; i += 2) s += `${flat[i]}: ${flat[i + 1]}\r\n`;
  return `${s}\r\n`;
}

class UpgradeExchange implements DispatchHandler, Exchange {
  private done = false;
  private abortFn: ((err?: Error) => void) | undefined = undefined;

  constructor(
    private readonly ctx: RequestContext,
    private readonly up: UpgradeRequest,
    private readonly deps: ForwardDeps,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.done) abort(CLIENT_GONE);
    else this.abortFn = abort;
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, upstream: Socket): void {
    if (this.done) {
      // Answered meanwhile (a timeout): this upgrade is not wanted any more.
      upstream.destroy();
      return;
    }
    const ctx = this.ctx;
    const flat: string[] = [];
    const raw = rawHeaders ?? [];
    for (let i = 0; i < raw.length; i++) flat.push(String(raw[i]));
    const client = this.up.socket;
    client.write(head(statusCode, 'Switching Protocols', flat));
    if (this.up.head.length > 0) upstream.write(this.up.head);
    ctx.status = statusCode;
    this.finish();
    splice(client, upstream, () => undefined);
  }

  onHeaders(statusCode: number, rawHeaders: string[], _resume: () => void, statusText: string): boolean {
    if (this.done) return false;
    if (statusCode < 200) return true;
    const flat: string[] = [];
    filterResponseHeaders(rawHeaders, flat);
    const extra = this.ctx.responseHeaders;
    if (extra !== undefined) for (let i = 0; i < extra.length; i++) flat.push(extra[i] as string);
    this.ctx.status = statusCode;
    this.ctx.response.writeHead(statusCode, statusText, flat);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    return this.ctx.response.write(chunk);
  }

  onComplete(): void {
    if (this.done) return;
    this.ctx.response.end();
    this.finish();
  }

  onError(err: Error): void {
    if (this.done) return;
    const ctx = this.ctx;
    // Failed before it had a connection (tunnel handshake, identity check, open breaker).
    if (this.abortFn === undefined) ctx.upstreamIdentity = undefined;
    const r = rescue(err, ctx.destinationKey);
    this.deps.log.warn(
      {
        event: 'upstream_error',
        code: r.code,
        status: r.status,
        upstream: ctx.destinationKey,
        upgrade: true,
        err: r.error.cause ?? r.error,
      },
      r.error.message,
    );
    this.answer(r.error);
  }

  /** ctx.abort (a route timeout before the 101): answer with `err`, stop the upstream side. */
  abort(err: ProxyError): void {
    if (this.done) return;
    const abort = this.abortFn;
    if (abort === undefined) this.ctx.upstreamIdentity = undefined;
    this.abortFn = undefined;
    this.answer(err);
    abort?.(err);
  }

  /** The client closed before the exchange was over. */
  clientClosed(): void {
    if (this.done) return;
    const ctx = this.ctx;
    ctx.errorCode ??= ClientAbortedError.code;
    if (this.abortFn === undefined) ctx.upstreamIdentity = undefined;
    this.abortFn?.(CLIENT_GONE);
    this.finish();
  }

  private answer(err: unknown): void {
    const ctx = this.ctx;
    if (ctx.response.headersSent) {
      ctx.errorCode = rescue(err, ctx.destinationKey).code;
      this.up.socket.destroy();
    } else {
      writeErrorResponse(ctx, rescue(err, ctx.destinationKey), this.deps.draining());
    }
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    recordRequest(this.ctx, this.deps.metrics);
  }

  dispatch(): void {
    const ctx = this.ctx;
    this.deps.pools.get(ctx.destinationKey, ctx).dispatch(
      {
        path: ctx.path,
        method: ctx.method,
        headers: ctx.upstreamHeaders,
        upgrade: this.up.protocols,
        body: null,
      },
      this,
    );
  }
}

/**
 * The forwarder's step for `ctx.upgrade`: no retries (the client is waiting on a protocol
 * switch, and a 101 cannot be taken back), otherwise the same dispatchers as any request.
 */
export function forwardUpgrade(ctx: RequestContext, up: UpgradeRequest, deps: ForwardDeps): void {
  const x = new UpgradeExchange(ctx, up, deps);
  ctx.exchange = x;
  up.socket.once('close', () => x.clientClosed());
  x.dispatch();
}
