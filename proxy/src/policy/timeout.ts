/**
 * The timeout layer (docs/traffic.md): the route's whole-request timeout (`timeoutMs`, counted
 * from the request head being parsed, retries and backoff included) and its idle timeout
 * (`idleTimeoutMs`: no byte moved on the client connection either way). On expiry
 * `ctx.abort`: 504 RMR_REQUEST_TIMEOUT / RMR_IDLE_TIMEOUT before the response head, a cut client
 * connection after it; the upstream exchange is aborted in both cases.
 *
 * Idle time is measured on the client socket's byte counters, polled every quarter of the idle
 * timeout (one re-armed timer, no listener on the data path), so a stall is noticed between
 * idleTimeoutMs and 1.25 × idleTimeoutMs after the last byte.
 */
import { performance } from 'node:perf_hooks';
import { IdleTimeoutError, RequestTimeoutError } from '../errors.js';
import type { ProxyError } from '../errors.js';
import type { Layer, RequestContext } from '../http/layer.js';
import type { Logger } from '../log.js';
import type { Direction } from '../metrics/proxy.js';
import type { TrafficLayerOptions } from './route.js';

/** One request's timers; cleared when the request is over. */
class Watch {
  private requestTimer: NodeJS.Timeout | undefined = undefined;
  private idleTimer: NodeJS.Timeout | undefined = undefined;
  private bytes = -1;
  private lastMove = 0;

  constructor(
    readonly ctx: RequestContext,
    private readonly timeoutMs: number | undefined,
    readonly idleMs: number | undefined,
    private readonly o: { readonly log: Logger; readonly direction: Direction },
  ) {}

  arm(): void {
    const ctx = this.ctx;
    // Real time, like ctx.startTime and the timers themselves.
    const now = performance.now();
    if (this.timeoutMs !== undefined) {
      const left = Math.max(1, this.timeoutMs - (now - ctx.startTime));
      this.requestTimer = setTimeout(onRequestTimeout, left, this);
    }
    if (this.idleMs !== undefined) {
      this.bytes = this.moved();
      this.lastMove = now;
      this.idleTimer = setTimeout(onIdleCheck, Math.max(1, this.idleMs / 4), this);
    }
    ctx.onDone(() => this.clear());
  }

  /** Bytes so far on the client connection, both ways. */
  private moved(): number {
    return this.ctx.response.bytesMoved();
  }

  idleCheck(): void {
    const b = this.moved();
    const now = performance.now();
    if (b !== this.bytes) {
      this.bytes = b;
      this.lastMove = now;
    } else if (now - this.lastMove >= (this.idleMs as number)) {
      this.idleTimer = undefined;
      this.expire(new IdleTimeoutError(this.ctx.destinationKey, this.idleMs as number), 'idle_timeout');
      return;
    }
    this.idleTimer?.refresh();
  }

  requestTimeout(): void {
    this.requestTimer = undefined;
    this.expire(
      new RequestTimeoutError(this.ctx.destinationKey, this.timeoutMs as number),
      'request_timeout',
    );
  }

  private expire(err: ProxyError, event: string): void {
    const ctx = this.ctx;
    this.o.log.warn(
      {
        event,
        direction: this.o.direction,
        code: err.code,
        upstream: ctx.destinationKey,
        method: ctx.method,
        headSent: ctx.response.headersSent,
      },
      err.message,
    );
    ctx.abort(err);
    this.clear();
  }

  clear(): void {
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.requestTimer = undefined;
    this.idleTimer = undefined;
  }
}

function onRequestTimeout(w: Watch): void {
  w.requestTimeout();
}

function onIdleCheck(w: Watch): void {
  w.idleCheck();
}

/**
 * Applies `ctx.route`'s `timeoutMs` and `idleTimeoutMs` (set by routeLayer, which must run
 * before this layer). A request without them costs one property read. `o.now` is not used:
 * timeouts run on real timers.
 */
export function timeoutLayer(o: TrafficLayerOptions): Layer {
  const wo = { log: o.log, direction: o.direction };
  return (next) => (ctx) => {
    const route = ctx.route;
    if (route !== undefined && (route.timeoutMs !== undefined || route.idleTimeoutMs !== undefined))
      new Watch(ctx, route.timeoutMs, route.idleTimeoutMs, wo).arm();
    next(ctx);
  };
}
