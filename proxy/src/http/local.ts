/**
 * Answers the proxy gives itself instead of the upstream's: one writer for the error response
 * (rescue.ts decides status and code) and one recorder, shared by the forwarder and by layers
 * that refuse a request (rate limit 429, timeout 504, authorization 403), so every answer is
 * counted in `remora_requests_total` with its status and finished exactly once.
 */
import { performance } from 'node:perf_hooks';
import { RateLimitedError } from '../errors.js';
import type { ProxyError } from '../errors.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import type { Rescue } from '../rescue.js';
import type { RequestContext } from './layer.js';

/** Writes the error answer for `r` (the head has not been sent). Sets `ctx.status`/`errorCode`. */
export function writeErrorResponse(ctx: RequestContext, r: Rescue, draining: boolean): void {
  const res = ctx.res;
  ctx.status = r.status;
  ctx.errorCode = r.code;
  const body = `${r.error.message}\n`;
  const length = Buffer.byteLength(body);
  ctx.bytesSent += length;
  const headers = [ERROR_HEADER, r.code, 'content-type', 'text/plain', 'content-length', String(length)];
  if (r.error instanceof RateLimitedError) headers.push('retry-after', String(r.error.retryAfterSeconds));
  const extra = ctx.responseHeaders;
  if (extra !== undefined) for (let i = 0; i < extra.length; i++) headers.push(extra[i] as string);
  if (draining) headers.push('connection', 'close');
  res.writeHead(r.status, headers);
  res.end(body);
}

/** Counts the request by its status (0: the client left first), its duration, then `ctx.finish`. */
export function recordRequest(ctx: RequestContext, metrics: DirectionMetrics | undefined): void {
  const now = performance.now();
  if (metrics !== undefined) {
    const m = ctx.peerMetrics ?? metrics;
    m.requests(ctx.status).inc();
    m.duration.observe((now - ctx.startTime) / 1000);
  }
  ctx.finish(now);
}

/**
 * THE way for a layer to answer a request itself with `err` (and not call `next`): the answer
 * from rescue.ts (403, 429 with Retry-After, 504, ...), counted once and finished. Once the
 * forwarder owns the exchange, use `ctx.abort(err)` instead: it also stops the upstream side.
 */
export function answerLocally(ctx: RequestContext, err: ProxyError): void {
  if (ctx.endTime !== 0) return;
  const local = ctx.local;
  if (ctx.res.headersSent) {
    // Only a forwarder sends heads, and it answers through its exchange; be safe anyway.
    ctx.errorCode = err.code;
    ctx.res.destroy();
  } else {
    writeErrorResponse(ctx, rescue(err, ctx.destinationKey), local?.draining() ?? false);
  }
  recordRequest(ctx, local?.metrics);
}
