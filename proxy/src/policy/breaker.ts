/**
 * Circuit breaking (issue 7, docs/circuit-breaking.md) as a wrapper around a pool's
 * `dispatch(opts, handler)` (http/dispatch.ts): before a request goes to an endpoint's pool it is counted against
 * the destination's `maxRequests` (in flight over all its endpoints) and the pool's
 * `maxPendingRequests` (waiting for a connection); beyond either it is refused through the
 * handler's own `onError` with a CircuitOpenError, so the forwarder's one error path answers
 * 503 RMR_CIRCUIT_OPEN. `maxConnections` is the pool's `connections` (see pools.ts). The
 * handler wrapper also reports each answer to outlier detection (outlier.ts): a 5xx, or a
 * gRPC call whose `grpc-status` (trailers-only head or trailers) is an endpoint failure
 * (grpc/protocol.ts isEndpointFailure), counts against the endpoint; another answer for it.
 *
 * Only requests under an outbound section pay for any of this: without one, callers hand the
 * plain pool out and no wrapper is allocated.
 */
import type { Socket } from 'node:net';
import { CircuitOpenError, UpstreamConnectError, UpstreamTimeoutError } from '../errors.js';
import type { CounterChild } from '../metrics/registry.js';
import { grpcStatusInFields, isEndpointFailure, isGrpcContentType } from '../grpc/protocol.js';
import { classify } from '../rescue.js';
import { TunnelError } from '../tunnel/connect.js';
import { fieldStrings } from '../http/dispatch.js';
import type { DispatchHandler, DispatchOptions, UpstreamPool } from '../http/dispatch.js';
import type { ResponseHead } from '../http1/head.js';
import type { PolicyMetrics } from './metrics.js';
import type { CircuitBreaker } from './types.js';
import type { EndpointHealth } from './outlier.js';

export type BreakerLimit = 'max_connections' | 'max_pending_requests' | 'max_requests';

/** Requests in flight to one destination (all its endpoints), for `maxRequests`. */
export interface InFlight {
  inFlight: number;
}

/**
 * One pool with the connection limit it was made with and its requests waiting for a
 * connection (counted here, from dispatch to the first `onConnect`). Replaced whole when the
 * limit changes, so a request always gives its count back to the slot that took it.
 */
export interface PoolSlot {
  readonly pool: UpstreamPool;
  /** `connections` the pool was built with; undefined = unlimited */
  readonly connections: number | undefined;
  pending: number;
}

/**
 * The refusal counters, resolved once (`PolicyMetrics.circuitOpen` children). `maxConnections`
 * alone never refuses: a request beyond it waits for a connection, and the pending limit is
 * what turns waiting into a refusal; so `limit="max_connections"` stays at 0.
 */
export class BreakerCounters {
  readonly maxPendingRequests: CounterChild;
  readonly maxRequests: CounterChild;
  constructor(m: PolicyMetrics) {
    this.maxPendingRequests = m.circuitOpen.child('outbound', 'max_pending_requests');
    this.maxRequests = m.circuitOpen.child('outbound', 'max_requests');
  }
}

/** The `host:port` key's port (`10.0.0.1:80`, `[fd00::1]:80`). */
export function portOf(key: string): number {
  return Number(key.slice(key.lastIndexOf(':') + 1));
}

/** Would a new request have to wait for a connection of this slot's pool? */
function mustWait(slot: PoolSlot): boolean {
  // undici's `stats` builds an object and walks the clients: read only when a limit is at stake.
  return slot.pool.stats.free === 0;
}

/** A connect failure for outlier detection: refused, unreachable, timed out or a failed tunnel. */
export function isConnectFailure(err: unknown, beforeConnect: boolean): boolean {
  if (err instanceof CircuitOpenError) return false;
  if (beforeConnect && err instanceof TunnelError) return true;
  const e = classify(err, '');
  return e instanceof UpstreamConnectError || (beforeConnect && e instanceof UpstreamTimeoutError);
}

/**
 * Dispatches `opts` to `slot`'s pool under the breaker `cb`, or refuses it (handler.onError with
 * a CircuitOpenError, counted). `health` (outlier detection for the chosen endpoint) is told
 * how the answer went.
 */
export function guardedDispatch(
  upstream: string,
  dest: InFlight,
  cb: CircuitBreaker | undefined,
  slot: PoolSlot,
  opts: DispatchOptions,
  handler: DispatchHandler,
  counters: BreakerCounters,
  health: EndpointHealth | undefined,
): boolean {
  if (cb !== undefined) {
    const maxReq = cb.maxRequests;
    if (maxReq !== undefined && dest.inFlight >= maxReq)
      return refuse(upstream, 'max_requests', counters.maxRequests, handler);
    const maxPending = cb.maxPendingRequests;
    if (maxPending !== undefined && slot.pending >= maxPending && mustWait(slot))
      return refuse(upstream, 'max_pending_requests', counters.maxPendingRequests, handler);
  }
  dest.inFlight++;
  slot.pending++;
  return slot.pool.dispatch(opts, new Guard(handler, dest, slot, health));
}

function refuse(
  upstream: string,
  limit: BreakerLimit,
  counter: CounterChild,
  handler: DispatchHandler,
): false {
  counter.inc();
  handler.onError?.(new CircuitOpenError(upstream, limit));
  return false;
}

/** The handler wrapper: one give-back of each count, one outcome. */
class Guard implements DispatchHandler {
  private connected = false;
  private settled = false;
  /** a gRPC answer whose status comes in the trailers: its health is told at onComplete */
  private grpcPending = false;
  /** as the handler it wraps */
  readonly takesFields: boolean;

  constructor(
    private readonly inner: DispatchHandler,
    private readonly dest: InFlight,
    private readonly slot: PoolSlot,
    private readonly health: EndpointHealth | undefined,
  ) {
    this.takesFields = inner.takesFields === true;
  }

  private connect(): void {
    // undici may call onConnect again when it retries a request on a fresh connection.
    if (this.connected) return;
    this.connected = true;
    this.slot.pending--;
  }

  private status(code: number, given: string[] | null, fields?: ResponseHead): void {
    const h = this.health;
    if (h === undefined || code < 200) return;
    const headers = code === 200 && given !== null ? fieldStrings(given, fields) : null;
    if (code >= 500) h.failed('5xx');
    else if (headers !== null && isGrpcAnswer(headers)) {
      const g = grpcStatusInFields(headers);
      if (g < 0) this.grpcPending = true;
      else grpcOutcome(h, g);
    } else h.succeeded();
  }

  private settle(err: Error | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.dest.inFlight--;
    const before = !this.connected;
    if (before) {
      this.connected = true;
      this.slot.pending--;
    }
    if (err !== undefined && this.health !== undefined && isConnectFailure(err, before))
      this.health.failed('connect');
  }

  onConnect(abort: (err?: Error) => void): void {
    this.connect();
    this.inner.onConnect?.(abort);
  }

  onHeaders(
    statusCode: number,
    headers: string[],
    resume: () => void,
    statusText: string,
    fields?: ResponseHead,
  ): boolean {
    // An empty list with `fields`: the codec left decoding to whoever needs the strings.
    this.status(statusCode, headers, fields);
    return this.inner.onHeaders?.(statusCode, headers, resume, statusText, fields) ?? true;
  }

  onData(chunk: Buffer): boolean {
    return this.inner.onData?.(chunk) ?? true;
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    if (this.grpcPending && this.health !== undefined) {
      this.grpcPending = false;
      const g = trailers === null ? -1 : grpcStatusInFields(trailers);
      if (g >= 0) grpcOutcome(this.health, g);
    }
    this.settle(undefined);
    this.inner.onComplete?.(trailers);
  }

  onError(err: Error): void {
    this.settle(err);
    if (this.inner.onError === undefined) throw err;
    this.inner.onError(err);
  }

  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Socket): void {
    this.status(statusCode, null);
    this.settle(undefined);
    this.inner.onUpgrade?.(statusCode, headers, socket);
  }
}

/** A gRPC status as outlier detection sees it: an endpoint failure counts as a 5xx. */
function grpcOutcome(h: EndpointHealth, code: number): void {
  if (isEndpointFailure(code)) h.failed('5xx');
  else h.succeeded();
}

/** The response head says `content-type: application/grpc*`. */
function isGrpcAnswer(raw: readonly (Buffer | string)[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as Buffer | string;
    if (name.length !== 12) continue;
    const n = typeof name === 'string' ? name : name.toString('latin1');
    if (n.toLowerCase() === 'content-type') return isGrpcContentType(String(raw[i + 1]));
  }
  return false;
}
