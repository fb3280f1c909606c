/**
 * The innermost Handler: sends the request to its upstream through the origin's undici Pool
 * with the low-level `dispatch(opts, handler)` API and streams the response back. One handler
 * object per request holds all the state; its methods live on the prototype, so the hot path
 * allocates no closures.
 */
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Logger } from '../log.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { filterResponseHeaders } from './headers.js';
import type { Handler, RequestContext } from './layer.js';

export interface ForwardDeps {
  /** upstream dispatcher per `host:port` (the pools, or the mesh's endpoint choice over them) */
  readonly pools: { get(key: string): Pick<Dispatcher, 'dispatch'> };
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  /** true while draining: responses then carry `Connection: close` */
  readonly draining: () => boolean;
}

const kHandler = Symbol('remora.upstreamHandler');
type ResWithHandler = ServerResponse & { [kHandler]?: UpstreamHandler };

class UpstreamHandler implements Dispatcher.DispatchHandler {
  private abortFn: ((err: Error) => void) | undefined = undefined;
  private resume: (() => void) | undefined = undefined;
  private done = false;

  constructor(
    private readonly ctx: RequestContext,
    private readonly deps: ForwardDeps,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.done) abort(new Error('client went away'));
    else this.abortFn = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: 100-continue is answered locally, the rest is dropped
    const res = this.ctx.res;
    const headers: string[] = [];
    filterResponseHeaders(rawHeaders, headers);
    const extra = this.ctx.responseHeaders;
    if (extra !== undefined) for (let i = 0; i < extra.length; i++) headers.push(extra[i] as string);
    if (this.deps.draining()) headers.push('connection', 'close');
    this.ctx.status = statusCode;
    res.writeHead(statusCode, statusText, headers);
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.ctx.res;
    if (res.write(chunk)) return true;
    // Backpressure from the client: undici pauses the upstream until the client drains. The
    // listener is added only now, so the common small response costs no listener at all.
    res.once('drain', this.resume as () => void);
    return false;
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    const res = this.ctx.res;
    if (trailers !== null && trailers.length > 0 && res.chunkedEncoding) {
      const t: [string, string][] = [];
      for (let i = 0; i < trailers.length; i += 2) t.push([String(trailers[i]), String(trailers[i + 1])]);
      res.addTrailers(t);
    }
    res.end();
    this.finish();
  }

  onError(err: Error): void {
    const ctx = this.ctx;
    const res = ctx.res;
    if (this.done) {
      // The client went away first; the abort we caused is not an upstream failure.
      return;
    }
    if (res.headersSent) {
      // Too late for a status: cut the client connection so it sees an incomplete response.
      ctx.errorCode = rescue(err, ctx.destinationKey).code;
      res.destroy();
    } else {
      const r = rescue(err, ctx.destinationKey);
      ctx.status = r.status;
      ctx.errorCode = r.code;
      this.deps.log.warn(
        {
          event: 'upstream_error',
          code: r.code,
          status: r.status,
          upstream: ctx.destinationKey,
          err: r.error.cause ?? r.error,
        },
        r.error.message,
      );
      const headers = [
        ERROR_HEADER,
        r.code,
        'content-type',
        'text/plain',
        'content-length',
        String(r.error.message.length + 1),
      ];
      if (this.deps.draining()) headers.push('connection', 'close');
      res.writeHead(r.status, headers);
      res.end(`${r.error.message}\n`);
    }
    this.finish();
  }

  /** The client's response closed: if the upstream exchange is still running, abort it. */
  clientClosed(): void {
    if (this.done) return;
    this.done = true;
    if (this.ctx.status === 0 || !this.ctx.res.writableFinished) this.ctx.errorCode ??= 'RMR_CLIENT_ABORTED';
    this.abortFn?.(new Error('client went away'));
    this.record();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.record();
  }

  private record(): void {
    const ctx = this.ctx;
    const now = performance.now();
    const m = this.deps.metrics;
    // 0 = the client left before any response: counted, so aborts are visible.
    m.requests(ctx.status).inc();
    m.duration.observe((now - ctx.startTime) / 1000);
    ctx.finish(now);
  }
}

function onResClose(this: ResWithHandler): void {
  this[kHandler]?.clientClosed();
}

/** Builds the terminal Handler of a listener's stack. */
export function forwarder(deps: ForwardDeps): Handler {
  return (ctx) => {
    const h = new UpstreamHandler(ctx, deps);
    const res = ctx.res as ResWithHandler;
    res[kHandler] = h;
    res.once('close', onResClose);
    const req = ctx.req;
    const pool = deps.pools.get(ctx.destinationKey);
    pool.dispatch(
      {
        path: ctx.path,
        method: ctx.method,
        headers: ctx.upstreamHeaders,
        body: ctx.hasBody ? req : null,
      },
      h,
    );
  };
}
