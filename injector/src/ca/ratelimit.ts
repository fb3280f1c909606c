/**
 * The CA's request budget (token buckets, one per client address and one for everyone), taken
 * before a request costs anything: no body read, no CSR parse, no TokenReview. A proxy asks
 * once a day; a flood from one pod runs dry on its own bucket without draining the others',
 * and the global bucket caps what the whole cluster can make the API server review.
 */

export interface Rate {
  /** tokens added per second */
  readonly perSecond: number;
  /** bucket size: requests allowed back to back */
  readonly burst: number;
}

export interface CsrRateLimits {
  readonly perClient: Rate;
  readonly global: Rate;
  /** client addresses remembered at most (the oldest forgotten first: it then starts full) */
  readonly maxClients: number;
}

export const DEFAULT_CSR_RATE_LIMITS: CsrRateLimits = Object.freeze({
  // A pod renews at 70 % of its lifetime (at least 10 s, REMORA_CERT_TTL_SECONDS): one request a
  // second leaves room for that and for a restart loop, and is what one pod can make the API
  // server review at most.
  perClient: Object.freeze({ perSecond: 1, burst: 10 }),
  global: Object.freeze({ perSecond: 50, burst: 200 }),
  maxClients: 10_000,
});

class Bucket {
  tokens: number;
  at: number;

  constructor(
    private readonly rate: Rate,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.at = now;
  }

  refill(now: number): void {
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.at) / 1000) * this.rate.perSecond);
    this.at = now;
  }

  /** seconds until one token is back */
  wait(): number {
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate.perSecond));
  }
}

export type RateVerdict = { ok: true } | { ok: false; scope: 'client' | 'global'; retryAfterSeconds: number };

export class CsrRateLimiter {
  private readonly clients = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(
    private readonly limits: CsrRateLimits = DEFAULT_CSR_RATE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    this.global = new Bucket(limits.global, now());
  }

  /** Takes one token from the client's bucket, then from the global one; either may refuse. */
  take(client: string): RateVerdict {
    const now = this.now();
    let b = this.clients.get(client);
    if (b === undefined) {
      if (this.clients.size >= this.limits.maxClients) {
        const oldest = this.clients.keys().next().value as string;
        this.clients.delete(oldest);
      }
      b = new Bucket(this.limits.perClient, now);
      this.clients.set(client, b);
    } else b.refill(now);
    if (b.tokens < 1) return { ok: false, scope: 'client', retryAfterSeconds: b.wait() };
    this.global.refill(now);
    if (this.global.tokens < 1) return { ok: false, scope: 'global', retryAfterSeconds: this.global.wait() };
    b.tokens -= 1;
    this.global.tokens -= 1;
    return { ok: true };
  }

  /** Client addresses remembered now. */
  get size(): number {
    return this.clients.size;
  }
}
