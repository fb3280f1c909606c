/**
 * Retry decisions for the forwarder (docs/traffic.md). The forwarder is the only place that can
 * send a request again; this module says whether it may: the failure kind is listed in `on`,
 * attempts are left, the request is safe to repeat, and the route's budget allows one more.
 *
 * Safe to repeat: a connect failure retries any method (nothing reached the upstream); a 5xx
 * answer or a reset only an idempotent method. A request with a body is retried only after a
 * connect failure and only while no byte of its body was read: once the body started streaming
 * upstream it is gone (HTTP bodies are not buffered), so it is never sent twice.
 *
 * gRPC (`grpcStatus`, docs/grpc.md): a call answered trailers-only with a status the route
 * names is retried whatever its method (every call is a POST; naming the status is the
 * operator saying the call may be repeated, as gRPC's own retry policy does), but only when
 * the forwarder kept its whole request message (a small body complete before the answer).
 *
 * Budget (Finagle/Linkerd style): over a sliding window of 10 one-second slots, retries may add
 * `budgetPercent` of the requests the route saw, plus a floor of `minRetriesPerSecond` per second
 * of the window, so a quiet route can still retry.
 */
import type { CounterChild } from '../metrics/registry.js';
import type { Direction } from '../metrics/proxy.js';
import type { PolicyMetrics } from './metrics.js';
import type { RetryPolicy } from './types.js';
import { GRPC_STATUS } from '../grpc/protocol.js';
// The forwarder's view of a retry policy: the HTTP core owns the interface, policy implements it.
import type { RetryDecider, RetryReason } from '../http/exchange.js';

export type { RetryReason };

export const RETRY_DEFAULTS = Object.freeze({
  attempts: 2,
  budgetPercent: 20,
  backoffMs: 25,
  maxBackoffMs: 250,
  /** Linkerd's and Finagle's default floor */
  minRetriesPerSecond: 10,
});

/** The budget's window, in one-second slots. */
export const BUDGET_WINDOW_SECONDS = 10;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const BIT: Readonly<Record<RetryReason, number>> = Object.freeze({
  'connect-failure': 1,
  '5xx': 2,
  reset: 4,
  'grpc-status': 8,
});

/** `grpcStatus` names as the decider's bits (1 << code). */
export function grpcStatusBits(names: readonly string[] | undefined): number {
  let bits = 0;
  if (names !== undefined)
    for (const n of names) {
      const code = (GRPC_STATUS as Readonly<Record<string, number>>)[n];
      if (code !== undefined && code > 0) bits |= 1 << code;
    }
  return bits;
}

/**
 * Whether a request may be sent again after a failure of this kind (budget and attempts
 * aside). `bodyRead`: some of the request body was already taken from the client.
 */
export function repeatable(
  reason: RetryReason,
  method: string,
  hasBody: boolean,
  bodyRead: boolean,
): boolean {
  if (reason === 'grpc-status') return !hasBody || !bodyRead;
  if (hasBody) return reason === 'connect-failure' && !bodyRead;
  return reason === 'connect-failure' || IDEMPOTENT.has(method);
}

/** Requests and retries over the last BUDGET_WINDOW_SECONDS, in one-second slots. */
export class RetryBudget {
  private readonly requests = new Float64Array(BUDGET_WINDOW_SECONDS);
  private readonly retries = new Float64Array(BUDGET_WINDOW_SECONDS);
  private second = -1;
  private requestSum = 0;
  private retrySum = 0;
  private readonly reserve: number;

  constructor(
    private readonly percent: number,
    minRetriesPerSecond: number,
    private readonly now: () => number,
  ) {
    this.reserve = minRetriesPerSecond * BUDGET_WINDOW_SECONDS;
  }

  /** Moves the window to the current second (clearing the slots that fell out); its slot. */
  private slot(): number {
    const sec = Math.floor(this.now() / 1000);
    if (sec !== this.second) {
      const from =
        sec - this.second >= BUDGET_WINDOW_SECONDS ? sec - BUDGET_WINDOW_SECONDS + 1 : this.second + 1;
      for (let s = from; s <= sec; s++) {
        const i = s % BUDGET_WINDOW_SECONDS;
        this.requestSum -= this.requests[i] as number;
        this.retrySum -= this.retries[i] as number;
        this.requests[i] = 0;
        this.retries[i] = 0;
      }
      this.second = sec;
    }
    return sec % BUDGET_WINDOW_SECONDS;
  }

  /** A request took the route. */
  request(): void {
    const i = this.slot();
    this.requests[i] = (this.requests[i] as number) + 1;
    this.requestSum++;
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(): boolean {
    const i = this.slot();
    if (this.retrySum + 1 > this.reserve + (this.requestSum * this.percent) / 100) return false;
    this.retries[i] = (this.retries[i] as number) + 1;
    this.retrySum++;
    return true;
  }
}

export interface RouteRetryOptions {
  readonly direction: Direction;
  readonly metrics: PolicyMetrics;
  /** ms clock */
  readonly now: () => number;
  readonly minRetriesPerSecond: number;
}

/** One route's retry settings (defaults applied), its budget and its counters. */
export class RouteRetry implements RetryDecider {
  /** extra attempts after the first */
  readonly attempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  readonly budget: RetryBudget;
  readonly grpcStatuses: number;
  private readonly on: number;
  private readonly sentCounters: Readonly<Record<RetryReason, CounterChild>>;
  private readonly exhausted: CounterChild;

  constructor(p: RetryPolicy, o: RouteRetryOptions) {
    this.attempts = p.attempts ?? RETRY_DEFAULTS.attempts;
    this.backoffMs = p.backoffMs ?? RETRY_DEFAULTS.backoffMs;
    this.maxBackoffMs = Math.max(this.backoffMs, p.maxBackoffMs ?? RETRY_DEFAULTS.maxBackoffMs);
    let on = 0;
    for (const r of p.on ?? (['connect-failure', '5xx', 'reset'] as const)) on |= BIT[r];
    this.grpcStatuses = grpcStatusBits(p.grpcStatus);
    // Naming statuses turns gRPC retries on, whatever `on` lists.
    if (this.grpcStatuses !== 0) on |= BIT['grpc-status'];
    this.on = on;
    this.budget = new RetryBudget(
      p.budgetPercent ?? RETRY_DEFAULTS.budgetPercent,
      o.minRetriesPerSecond,
      o.now,
    );
    const r = o.metrics.retries;
    this.sentCounters = {
      'connect-failure': r.child(o.direction, 'connect-failure'),
      '5xx': r.child(o.direction, '5xx'),
      reset: r.child(o.direction, 'reset'),
      'grpc-status': r.child(o.direction, 'grpc-status'),
    };
    this.exhausted = o.metrics.retryBudgetExhausted.child(o.direction);
  }

  /**
   * Whether attempt number `failed` (1 = the first) may be followed by another. Takes the retry
   * from the budget when it says yes; counts an exhausted budget when only the budget says no.
   * `bodyRead`: the request body cannot be sent again (read and not kept).
   */
  shouldRetry(
    reason: RetryReason,
    failed: number,
    method: string,
    hasBody: boolean,
    bodyRead: boolean,
    grpcStatus = -1,
  ): boolean {
    if ((this.on & BIT[reason]) === 0 || failed > this.attempts) return false;
    if (reason === 'grpc-status' && (grpcStatus <= 0 || (this.grpcStatuses & (1 << grpcStatus)) === 0))
      return false;
    if (!repeatable(reason, method, hasBody, bodyRead)) return false;
    if (this.budget.tryRetry()) return true;
    this.exhausted.inc();
    return false;
  }

  /** Delay before retry number `n` (1-based): full jitter over an exponential, capped, ceiling. */
  backoff(n: number): number {
    const ceiling = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (n - 1));
    return Math.random() * ceiling;
  }

  /** A retry was sent upstream. */
  sent(reason: RetryReason): void {
    this.sentCounters[reason].inc();
  }
}
