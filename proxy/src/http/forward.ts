/**
 * The innermost Handler: sends the request to its upstream through the origin's undici Pool
 * with the low-level `dispatch(opts, handler)` API and streams the response back. One handler
 * object per request holds all the state; its methods live on the prototype, so the hot path
 * allocates no closures.
 *
 * It is also the only place that can send a request again: when the policy route retries
 * (`ctx.retry`, policy/retry.ts decides), a failed attempt is dropped and, after a backoff, the
 * request is dispatched anew through `pools.get` (so another endpoint may take it: the mesh's
 * choice avoids the one that failed). Layers stop the exchange with `ctx.abort(err)`
 * (timeouts): an answer or a cut, and the upstream aborted.
 *
 * gRPC (docs/grpc.md "Retries"): when the route retries on gRPC statuses, a call's request
 * message is teed into a bounded copy (replay.ts), and a trailers-only answer whose status the
 * route names is held back (nothing sent downstream) until its END_STREAM shows it is one: then
 * the call is sent again with the kept message, else the held head goes out as it came.
 */
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { ClientAbortedError, UpstreamConnectError, UpstreamResetError } from '../errors.js';
import type { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { classify, rescue } from '../rescue.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { grpcStatusInFields, isGrpcContentType } from '../grpc/protocol.js';
import type { RequestBody, ResponseOwner, RetryReason } from './exchange.js';
import { headerValue } from './exchange.js';
import { filterResponseFields, filterResponseHeaders } from './headers.js';
import { fieldStrings } from './dispatch.js';
import type { DispatchHandler, Dispatcher } from './dispatch.js';
import type { ResponseHead } from '../http1/head.js';
import type { Exchange, Handler, RequestContext } from './layer.js';
import { recordRequest, writeErrorResponse } from './local.js';
import { ReplayBody } from './replay.js';
import { forwardUpgrade } from './upgrade.js';

export interface ForwardDeps {
  /**
   * upstream dispatcher per `host:port` (the pools, or the mesh's endpoint choice over them,
   * which notes the chosen endpoint's identity on the request's context)
   */
  readonly pools: { get(key: string, ctx?: RequestContext): Dispatcher };
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  /** true while draining: responses then carry `Connection: close` */
  readonly draining: () => boolean;
}

const SUPERSEDED = new Error('attempt superseded (retry or local answer)');
const CLIENT_GONE = new Error('client went away');

class UpstreamHandler implements DispatchHandler, Exchange, ResponseOwner {
  /** reads the codec's head itself (writeHead): the codec decodes no strings for it */
  readonly takesFields = true;
  private abortFn: ((err: Error) => void) | undefined = undefined;
  private resume: (() => void) | undefined = undefined;
  private done = false;
  /** the attempt whose callbacks count (1-based); a dropped attempt's late callbacks are ignored */
  private attempt = 1;
  private backoffTimer: NodeJS.Timeout | undefined = undefined;
  private retryReason: RetryReason = 'connect-failure';
  /** the body the next attempt sends: the client's, its tee, or the kept copy */
  private body: RequestBody | null;
  /** a gRPC call's request message, kept for a replay (only when the route retries on statuses) */
  private readonly replay: ReplayBody | undefined = undefined;
  /** a trailers-only answer held back while it may be retried */
  private held: HeldHead | undefined = undefined;

  constructor(
    private readonly ctx: RequestContext,
    private readonly deps: ForwardDeps,
  ) {
    const body = ctx.body;
    this.body = body;
    if (
      body !== null &&
      ctx.retry !== undefined &&
      ctx.retry.grpcStatuses !== 0 &&
      ctx.httpVersion === '2' &&
      isGrpcContentType(headerValue(ctx.rawHeaders, 'content-type'))
    ) {
      this.replay = new ReplayBody(body);
      this.body = this.replay;
    }
  }

  // undici's callbacks for the first attempt; retries go through RetryAttempt.
  onConnect(abort: (err?: Error) => void): void {
    this.connected(1, abort);
  }
  onHeaders(
    statusCode: number,
    rawHeaders: string[],
    resume: () => void,
    statusText: string,
    fields?: ResponseHead,
  ): boolean {
    return this.headers(1, statusCode, rawHeaders, resume, statusText, fields);
  }
  onData(chunk: Buffer): boolean {
    return this.data(1, chunk);
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    this.complete(1, trailers);
  }
  onError(err: Error): void {
    this.error(1, err);
  }

  dispatch(): void {
    const ctx = this.ctx;
    const n = this.attempt;
    this.deps.pools.get(ctx.destinationKey, ctx).dispatch(
      {
        path: ctx.path,
        method: ctx.method,
        headers: ctx.upstreamHeaders,
        checked: ctx.checkedHead,
        // The stage's body satisfies the Readable subset the upstream clients read (exchange.ts).
        body: this.body as unknown as Readable | null,
      },
      n === 1 ? this : new RetryAttempt(this, n),
    );
  }

  connected(n: number, abort: (err?: Error) => void): void {
    if (this.done || n !== this.attempt) abort(n !== this.attempt ? SUPERSEDED : CLIENT_GONE);
    else this.abortFn = abort;
  }

  headers(
    n: number,
    statusCode: number,
    given: string[],
    resume: () => void,
    statusText: string,
    fields?: ResponseHead,
  ): boolean {
    if (n !== this.attempt) return false;
    if (statusCode < 200) return true; // 1xx: 100-continue is answered locally, the rest is dropped
    if (statusCode >= 500 && this.ctx.retry !== undefined && this.retry('5xx')) return false;
    if (this.replay !== undefined && statusCode === 200) {
      // grpc-status in the head: a trailers-only answer. Held while its status may be retried.
      const rawHeaders = fieldStrings(given, fields);
      const code = grpcStatusInFields(rawHeaders);
      if (code > 0 && ((this.ctx.retry?.grpcStatuses ?? 0) & (1 << code)) !== 0) {
        // (as strings: the codec's fields are its scratch, valid during onHeaders only)
        this.held = { statusCode, rawHeaders, resume, statusText, code };
        return true;
      }
      this.writeHead(statusCode, rawHeaders, resume, statusText, fields);
      return true;
    }
    this.writeHead(statusCode, given, resume, statusText, fields);
    return true;
  }

  /**
   * The head to the client: through the stage's writeHeadFields when it writes HTTP/1 and the
   * codec gave the parsed head (its kept lines go out as they came), else as a filtered list.
   */
  private writeHead(
    statusCode: number,
    given: string[],
    resume: () => void,
    statusText: string,
    fields?: ResponseHead,
  ): void {
    const res = this.ctx.response;
    const extra = this.ctx.responseHeaders;
    this.ctx.status = statusCode;
    this.resume = resume;
    if (fields !== undefined && res.writeHeadFields !== undefined) {
      // (the stage reads draining itself)
      res.writeHeadFields(fields, extra);
      return;
    }
    const headers: string[] = [];
    if (fields !== undefined) filterResponseFields(fieldStrings(given, fields), fields.kinds, headers);
    else filterResponseHeaders(given, headers);
    if (extra !== undefined) for (let i = 0; i < extra.length; i++) headers.push(extra[i] as string);
    if (this.deps.draining()) headers.push('connection', 'close');
    res.writeHead(statusCode, statusText, headers);
  }

  /** The held head goes out after all (the answer was not trailers-only, or no retry). */
  private release(): void {
    const h = this.held;
    if (h === undefined) return;
    this.held = undefined;
    this.writeHead(h.statusCode, h.rawHeaders, h.resume, h.statusText);
  }

  data(n: number, chunk: Buffer): boolean {
    if (n !== this.attempt) return false;
    this.release();
    const ctx = this.ctx;
    ctx.bytesSent += chunk.length;
    // false: backpressure from the client; undici pauses the upstream until responseDrained.
    return ctx.response.write(chunk);
  }

  responseDrained(): void {
    this.resume?.();
  }

  complete(n: number, trailers: string[] | Buffer[] | null): void {
    if (n !== this.attempt) return;
    const held = this.held;
    if (held !== undefined) {
      if (this.retry('grpc-status', held.code)) {
        this.held = undefined;
        return;
      }
      this.release();
    }
    let t: string[] | null = null;
    if (trailers !== null && trailers.length > 0) {
      t = [];
      for (let i = 0; i < trailers.length; i++) t.push(String(trailers[i]));
    }
    this.ctx.response.end(undefined, t);
    this.finish();
  }

  error(n: number, err: Error): void {
    // The client went away first, or we dropped this attempt: not an upstream failure.
    if (this.done || n !== this.attempt) return;
    this.held = undefined; // a head held back and then a failure: the failure is the answer
    const ctx = this.ctx;
    // Failed before it had a connection (a tunnel handshake or identity check, an open breaker):
    // nobody proved the identity the mesh noted.
    if (this.abortFn === undefined) ctx.upstreamIdentity = undefined;
    const res = ctx.response;
    if (res.headersSent) {
      // Too late for a status: cut the client connection so it sees an incomplete response.
      ctx.errorCode = rescue(err, ctx.destinationKey).code;
      res.destroy();
      this.finish();
      return;
    }
    if (ctx.retry !== undefined) {
      const e = classify(err, ctx.destinationKey);
      // A connect timeout is a connect failure too: nothing reached the upstream.
      const reason: RetryReason | undefined =
        e instanceof UpstreamConnectError || (err as { code?: unknown }).code === 'UND_ERR_CONNECT_TIMEOUT'
          ? 'connect-failure'
          : e instanceof UpstreamResetError
            ? 'reset'
            : undefined;
      if (reason !== undefined && this.retry(reason)) return;
    }
    const r = rescue(err, ctx.destinationKey);
    this.deps.log.warn(
      {
        event: 'upstream_error',
        code: r.code,
        status: r.status,
        upstream: ctx.destinationKey,
        attempt: n,
        err: r.error.cause ?? r.error,
      },
      r.error.message,
    );
    writeErrorResponse(ctx, r, this.deps.draining());
    this.finish();
  }

  /** Drops the current attempt and schedules the next one, when the route's retry policy allows. */
  private retry(reason: RetryReason, grpcStatus = -1): boolean {
    const ctx = this.ctx;
    const body = ctx.body;
    const r = ctx.retry;
    if (r === undefined) return false;
    const replay = this.replay;
    // Can the body go again? The client's only while untouched; a kept gRPC message when whole.
    const bodyRead =
      body !== null && (replay !== undefined ? !replay.replayable : body.readableDidRead || body.destroyed);
    const delay = r.backoff(this.attempt);
    // A gRPC call's deadline (or its route timeout): no retry that could not be answered in time.
    const deadline = body?.deadline;
    if (deadline !== undefined && performance.now() + delay >= deadline) return false;
    if (!r.shouldRetry(reason, this.attempt, ctx.method, ctx.hasBody, bodyRead, grpcStatus)) return false;
    const abort = this.abortFn;
    this.abortFn = undefined;
    this.attempt++;
    // A 5xx being retried: abort its response (undici closes that upstream connection).
    abort?.(SUPERSEDED);
    this.retryReason = reason;
    if (replay !== undefined) this.body = replay.next();
    // The mesh's endpoint choice passes over the endpoint that just failed, if it has another.
    ctx.avoidEndpoint = ctx.upstreamEndpoint;
    const log = this.deps.log;
    if (log.isLevelEnabled('debug'))
      log.debug(
        {
          event: 'upstream_retry',
          reason,
          grpc_status: grpcStatus < 0 ? undefined : grpcStatus,
          attempt: this.attempt,
          upstream: ctx.destinationKey,
          endpoint: ctx.upstreamEndpoint,
          backoff_ms: Math.round(delay),
        },
        `retrying ${ctx.method} ${ctx.destinationKey} (${reason})`,
      );
    this.backoffTimer = setTimeout(retryNow, delay, this);
    return true;
  }

  sendRetry(): void {
    this.backoffTimer = undefined;
    if (this.done) return;
    this.ctx.retry?.sent(this.retryReason);
    this.ctx.retries++;
    this.dispatch();
  }

  /** ctx.abort: answer (or cut, after the head) with `err`, and stop the upstream side. */
  abort(err: ProxyError): void {
    if (this.done) return;
    const ctx = this.ctx;
    const res = ctx.response;
    this.stopBackoff();
    this.held = undefined;
    const abort = this.abortFn;
    if (abort === undefined) ctx.upstreamIdentity = undefined; // never connected: not proven
    this.abortFn = undefined;
    this.attempt++; // whatever undici still reports for the running attempt is dropped
    if (res.headersSent) {
      ctx.errorCode = err.code;
      res.destroy();
    } else {
      writeErrorResponse(ctx, rescue(err, ctx.destinationKey), this.deps.draining());
    }
    this.finish();
    // Not connected yet (queued in the pool): `connected` aborts it when it gets a connection.
    abort?.(err);
  }

  /** A retry waiting out its backoff is not sent after all. */
  private stopBackoff(): void {
    if (this.backoffTimer === undefined) return;
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
  }

  /** The client's response closed: if the upstream exchange is still running, abort it. */
  clientClosed(): void {
    if (this.done) return;
    this.done = true;
    this.stopBackoff();
    if (this.ctx.status === 0 || !this.ctx.response.finished) this.ctx.errorCode ??= ClientAbortedError.code;
    if (this.abortFn === undefined) this.ctx.upstreamIdentity = undefined; // never connected
    this.abortFn?.(CLIENT_GONE);
    recordRequest(this.ctx, this.deps.metrics);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    recordRequest(this.ctx, this.deps.metrics);
  }
}

/** A response head held back (forward.ts `held`) with the gRPC status it carries. */
interface HeldHead {
  readonly statusCode: number;
  readonly rawHeaders: string[];
  readonly resume: () => void;
  readonly statusText: string;
  readonly code: number;
}

/** undici's callbacks for a retry: they count only while it is the current attempt. */
class RetryAttempt implements DispatchHandler {
  readonly takesFields = true;
  constructor(
    private readonly h: UpstreamHandler,
    private readonly n: number,
  ) {}
  onConnect(abort: (err?: Error) => void): void {
    this.h.connected(this.n, abort);
  }
  onHeaders(
    statusCode: number,
    rawHeaders: string[],
    resume: () => void,
    statusText: string,
    fields?: ResponseHead,
  ): boolean {
    return this.h.headers(this.n, statusCode, rawHeaders, resume, statusText, fields);
  }
  onData(chunk: Buffer): boolean {
    return this.h.data(this.n, chunk);
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    this.h.complete(this.n, trailers);
  }
  onError(err: Error): void {
    this.h.error(this.n, err);
  }
}

function retryNow(h: UpstreamHandler): void {
  h.sendRetry();
}

/** Builds the terminal Handler of a listener's stack. */
export function forwarder(deps: ForwardDeps): Handler {
  return (ctx) => {
    const up = ctx.upgrade;
    if (up !== undefined) {
      forwardUpgrade(ctx, up, deps);
      return;
    }
    const h = new UpstreamHandler(ctx, deps);
    ctx.response.attach(h);
    ctx.exchange = h;
    h.dispatch();
  };
}
