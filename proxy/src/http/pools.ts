/**
 * One undici Pool per upstream origin, keep-alive, no pipelining (a slow response must not
 * hold the ones behind it). Pools of an outbound proxy follow the app's destinations, so an
 * idle pool is closed after a while instead of accumulating.
 */
import { Pool } from 'undici';

export interface PoolsOptions {
  /** ms an idle upstream connection is kept; below the common 5 s server default */
  readonly keepAliveTimeout: number;
  /** ms before an unused pool is closed */
  readonly idlePoolMs: number;
  readonly connectTimeout: number;
}

const DEFAULTS: PoolsOptions = { keepAliveTimeout: 4_000, idlePoolMs: 60_000, connectTimeout: 10_000 };

interface Entry {
  readonly pool: Pool;
  lastUsed: number;
}

export class Pools {
  private readonly pools = new Map<string, Entry>();
  private readonly opts: PoolsOptions;
  private readonly sweeper: NodeJS.Timeout;
  private now = Date.now();

  constructor(opts: Partial<PoolsOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
    // One clock read per second instead of one per request.
    this.sweeper = setInterval(() => this.sweep(), 1_000);
    this.sweeper.unref();
  }

  get(key: string): Pool {
    let e = this.pools.get(key);
    if (e === undefined) {
      const pool = new Pool(`http://${key}`, {
        pipelining: 1,
        keepAliveTimeout: this.opts.keepAliveTimeout,
        keepAliveMaxTimeout: this.opts.keepAliveTimeout,
        connectTimeout: this.opts.connectTimeout,
        // No timeouts on headers/body: a long poll or a slow stream is the app's business;
        // the client's own disconnect aborts the upstream request.
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: { noDelay: true },
      });
      e = { pool, lastUsed: this.now };
      this.pools.set(key, e);
    }
    e.lastUsed = this.now;
    return e.pool;
  }

  private sweep(): void {
    this.now = Date.now();
    for (const [key, e] of this.pools) {
      if (
        this.now - e.lastUsed > this.opts.idlePoolMs &&
        e.pool.stats.running === 0 &&
        e.pool.stats.pending === 0
      ) {
        this.pools.delete(key);
        e.pool.close().catch(() => undefined);
      }
    }
  }

  /** Open upstream connections across every pool (tests and /config). */
  connected(): number {
    let n = 0;
    for (const e of this.pools.values()) n += e.pool.stats.connected;
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.pools.values()].map((e) => e.pool.close());
    this.pools.clear();
    await Promise.allSettled(all);
  }

  destroy(): void {
    clearInterval(this.sweeper);
    for (const e of this.pools.values()) e.pool.destroy().catch(() => undefined);
    this.pools.clear();
  }
}
