/**
 * The local rate limit layer (inbound, docs/traffic.md): a token bucket per policy section
 * (`per: global`) or per section and source (`per: identity`: the verified peer identity over
 * mTLS, else the peer address). Refill is computed from a clock read when a request arrives: no
 * timer per request or per bucket. A refused request gets 429 RMR_RATE_LIMITED with
 * `Retry-After` (whole seconds until a token is back, rounded up).
 *
 * Per-source buckets are bounded (`maxBuckets` per section, least recently used evicted first):
 * a flood of source addresses cannot grow memory without bound. An evicted source starts again
 * with a full bucket, as a new source would.
 */
import { performance } from 'node:perf_hooks';
import { RateLimitedError } from '../errors.js';
import type { Layer } from '../http/layer.js';
import { answerLocally } from '../http/local.js';
import type { TrafficLayerOptions } from './route.js';
import type { RateLimit } from './types.js';

export interface RateLimitLayerOptions extends TrafficLayerOptions {
  /** per-source buckets kept per section (default 10,000) */
  readonly maxBuckets?: number;
}

export const DEFAULT_MAX_BUCKETS = 10_000;

interface Bucket {
  tokens: number;
  /** ms, clock of the last refill */
  last: number;
}

/** One section's limiter; its config follows the policy in force. */
export class SectionLimiter {
  private rate = 0;
  private burst = 0;
  private config: RateLimit | undefined = undefined;
  private readonly global: Bucket;
  /** insertion order is recency order: a hit is moved to the end */
  private readonly peers = new Map<string, Bucket>();

  constructor(
    config: RateLimit,
    private readonly maxBuckets: number,
    now: number,
  ) {
    this.configure(config);
    this.global = { tokens: this.burst, last: now };
  }

  /** Follows a policy update; tokens already spent stay spent (clamped to the new burst). */
  configure(config: RateLimit): void {
    if (config === this.config) return;
    this.config = config;
    this.rate = config.requestsPerSecond;
    this.burst = Math.max(1, config.burst ?? config.requestsPerSecond);
    if (this.global !== undefined && this.global.tokens > this.burst) this.global.tokens = this.burst;
  }

  /** Buckets kept for sources now. */
  get buckets(): number {
    return this.peers.size;
  }

  /**
   * Takes a token for `peer` (undefined: the section's one bucket). 0 when granted, else the
   * whole seconds until one is available.
   */
  take(peer: string | undefined, now: number): number {
    let b: Bucket;
    if (peer === undefined) {
      b = this.global;
    } else {
      const found = this.peers.get(peer);
      if (found !== undefined) {
        this.peers.delete(peer);
        b = found;
      } else {
        if (this.peers.size >= this.maxBuckets) {
          const oldest = this.peers.keys().next();
          if (oldest.done !== true) this.peers.delete(oldest.value);
        }
        b = { tokens: this.burst, last: now };
      }
      this.peers.set(peer, b);
    }
    const elapsed = now - b.last;
    if (elapsed > 0) {
      b.tokens = Math.min(this.burst, b.tokens + (elapsed * this.rate) / 1000);
      b.last = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }
}

/** Refusals are frequent under a flood: one error object per Retry-After value, made once. */
const refusals: RateLimitedError[] = [];
function refusal(seconds: number): RateLimitedError {
  if (seconds > 60) return new RateLimitedError(seconds);
  return (refusals[seconds] ??= new RateLimitedError(seconds));
}

/**
 * Inbound only (the policy has no outbound rate limit): for `direction: 'outbound'` the layer
 * passes every request straight through.
 */
export function rateLimitLayer(o: RateLimitLayerOptions): Layer {
  if (o.direction !== 'inbound') return (next) => next;
  const now = o.now ?? (() => performance.now());
  const maxBuckets = o.maxBuckets ?? DEFAULT_MAX_BUCKETS;
  const limiters = new Map<string, SectionLimiter>();
  const limited = o.metrics.rateLimited.child(o.direction);
  const policy = o.policy;
  const log = o.log;
  return (next) => (ctx) => {
    const section = policy.current?.inbound(ctx.destination.port);
    const rl = section?.rateLimit;
    if (section === undefined || rl === undefined) {
      next(ctx);
      return;
    }
    const t = now();
    let lim = limiters.get(section.key);
    if (lim === undefined) {
      lim = new SectionLimiter(rl, maxBuckets, t);
      limiters.set(section.key, lim);
    } else {
      lim.configure(rl);
    }
    const peer = rl.per === 'identity' ? (ctx.peerIdentity ?? ctx.peerAddress) : undefined;
    const wait = lim.take(peer, t);
    if (wait === 0) {
      next(ctx);
      return;
    }
    limited.inc();
    if (log.isLevelEnabled('debug'))
      log.debug({ event: 'rate_limited', section: section.key, peer, retryAfter: wait }, 'rate limited');
    answerLocally(ctx, refusal(wait));
  };
}
