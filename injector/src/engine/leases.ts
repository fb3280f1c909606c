/**
 * Upgrade leases (docs/upgrades.md): a proxy upgrades its engine only while it holds one, and
 * the injector grants at most `rollout.maxConcurrent` per version at a time, so a rollout moves
 * a bounded number of pods at once and a broken build takes down at most that many attempts in
 * parallel. A holder is one client (workload identity and address: one pod) with one lease; a
 * lease not released within `leaseSeconds` (a proxy that died mid-upgrade) is freed.
 * In memory: leases are per injector replica (docs/upgrades.md says what that means).
 */
export interface Lease {
  readonly holder: string;
  readonly pod: string;
  readonly version: string;
  readonly grantedAt: number;
  readonly expiresAt: number;
}

export type LeaseVerdict =
  | { granted: true; holders: number; maxConcurrent: number; expiresAt: number }
  | { granted: false; holders: number; maxConcurrent: number; retryAfterSeconds: number };

export class Leases {
  private readonly held = new Map<string, Lease>();
  /** the most leases of one version held at once since start (tests, logs) */
  peak = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private expire(): Lease[] {
    const t = this.now();
    const gone: Lease[] = [];
    for (const [k, l] of this.held)
      if (l.expiresAt <= t) {
        this.held.delete(k);
        gone.push(l);
      }
    return gone;
  }

  holders(version: string): number {
    let n = 0;
    for (const l of this.held.values()) if (l.version === version) n++;
    return n;
  }

  /** Expired leases are returned so the caller can log them. */
  acquire(
    holder: string,
    pod: string,
    version: string,
    maxConcurrent: number,
    leaseSeconds: number,
  ): { verdict: LeaseVerdict; expired: Lease[] } {
    const expired = this.expire();
    const mine = this.held.get(holder);
    // A holder asking again (a retry after a lost answer) keeps its lease; another version replaces it.
    if (mine !== undefined && mine.version !== version) this.held.delete(holder);
    const holders = this.holders(version);
    if (mine !== undefined && mine.version === version)
      return { verdict: { granted: true, holders, maxConcurrent, expiresAt: mine.expiresAt }, expired };
    if (holders >= maxConcurrent) {
      // Ask again when the oldest lease could be released: never sooner than 1 s, never later than 10 s.
      return {
        verdict: {
          granted: false,
          holders,
          maxConcurrent,
          retryAfterSeconds: Math.min(10, Math.max(1, leaseSeconds / 20)),
        },
        expired,
      };
    }
    const t = this.now();
    const lease: Lease = { holder, pod, version, grantedAt: t, expiresAt: t + leaseSeconds * 1000 };
    this.held.set(holder, lease);
    this.peak = Math.max(this.peak, holders + 1);
    return {
      verdict: { granted: true, holders: holders + 1, maxConcurrent, expiresAt: lease.expiresAt },
      expired,
    };
  }

  /** Frees the holder's lease; the lease freed, if there was one. */
  release(holder: string): Lease | undefined {
    const l = this.held.get(holder);
    this.held.delete(holder);
    return l;
  }

  list(): Lease[] {
    this.expire();
    return [...this.held.values()];
  }
}
