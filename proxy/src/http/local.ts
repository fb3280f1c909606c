/**
 * Answers the proxy gives itself instead of the upstream's: THE writer of error responses
 * (rescue.ts decides status and code; this decides how the answer looks) and one recorder,
 * shared by the forwarder, by layers that refuse a request (rate limit 429, timeout 504,
 * authorization 403) and by the server stages (a malformed head, a port that must speak HTTP:
 * `closingAnswer`), so every answer looks the same, is counted in `remora_requests_total` with
 * its status and finished exactly once.
 */
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import { RateLimitedError } from '../errors.js';
import type { ProxyError } from '../errors.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import type { Rescue } from '../rescue.js';
import type { RequestContext } from './layer.js';

/** Writes the error answer for `r` (the head has not been sent). Sets `ctx.status`/`errorCode`. */
export function writeErrorResponse(ctx: RequestContext, r: Rescue, draining: boolean): void {
  ctx.status = r.status;
  ctx.errorCode = r.code;
  const body = `${r.error.message}\n`;
  const length = Buffer.byteLength(body);
  ctx.bytesSent += length;
  const headers = errorFields(r, length);
  const extra = ctx.responseHeaders;
  if (extra !== undefined) for (let i = 0; i < extra.length; i++) headers.push(extra[i] as string);
  if (draining) headers.push('connection', 'close');
  ctx.response.writeHead(r.status, '', headers);
  ctx.response.end(body);
}

/** The fields every error answer carries, flat. */
function errorFields(r: Rescue, length: number): string[] {
  const headers = [ERROR_HEADER, r.code, 'content-type', 'text/plain', 'content-length', String(length)];
  if (r.error instanceof RateLimitedError) headers.push('retry-after', String(r.error.retryAfterSeconds));
  return headers;
}

/**
 * The same answer as HTTP/1.1 bytes with `connection: close`, for a connection that is refused
 * before (or instead of) a request the layers see: a malformed head, a port that must speak
 * HTTP. The caller writes it and closes.
 */
export function closingAnswer(r: Rescue): string {
  const body = `${r.error.message}\n`;
  const f = errorFields(r, Buffer.byteLength(body));
  let s = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\nconnection: close\r\n`;
  for (let i = 0; i < f.length; i += 2) s += `${f[i] as string}: ${f[i + 1] as string}\r\n`;
  return `${s}\r\n${body}`;
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
  if (ctx.response.headersSent) {
    // Only a forwarder sends heads, and it answers through its exchange; be safe anyway.
    ctx.errorCode = err.code;
    ctx.response.destroy();
  } else {
    writeErrorResponse(ctx, rescue(err, ctx.destinationKey), local?.draining() ?? false);
  }
  recordRequest(ctx, local?.metrics);
}
