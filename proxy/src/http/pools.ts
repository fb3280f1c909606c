/**
 * One keep-alive pool per upstream origin (http1/pool.ts, the project's own HTTP/1.1 client on
 * the codec), no pipelining (a slow response must not hold the ones behind it). Pools of an
 * outbound proxy follow the app's destinations, so an idle pool is closed after a while
 * instead of accumulating.
 *
 * Circuit breaking (docs/circuit-breaking.md): `outbound` is the outbound listener's view of
 * the pools, under the policy's outbound sections. `maxConnections` is the pool's
 * `connections`, fixed when a pool is made, so pools are keyed by origin AND limit: after a
 * change new requests go to the pool with the new limit, the old pool gets nothing new, its
 * running requests finish, its idle connections close at the keep-alive timeout and the idle
 * sweep drops it. (Replacing one pool in place would thrash when the same origin is reached
 * under two limits, e.g. a pod dialled directly and as an endpoint of a limited service.)
 * `get` is the plain, unlimited view (inbound, and what the mesh wraps itself).
 *
 * `client: 'undici'` (REMORA_UPSTREAM_CLIENT) makes every pool, the mesh's tunnel pools too,
 * an undici Pool instead: the previous client, kept as a fallback for one release. undici is
 * loaded only then (it is a few MB of heap the default client does not need).
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Pool as UndiciPool } from 'undici';
import type { UpstreamClient } from '../contract.js';
import { ClientPool } from '../http1/pool.js';
import type { Connector } from '../http1/connection.js';
import { H2Origin } from '../http2/client.js';
import { BreakerCounters, guardedDispatch, portOf } from '../policy/breaker.js';
import type { InFlight, PoolSlot } from '../policy/breaker.js';
import type { PolicyMetrics } from '../policy/metrics.js';
import type { CompiledOutbound, CompiledPolicy, PolicySource } from '../policy/types.js';
import type { DispatchHandler, DispatchOptions, Dispatcher, PoolStats, UpstreamPool } from './dispatch.js';

export interface PoolsOptions {
  /** ms an idle upstream connection is kept; below the common 5 s server default */
  readonly keepAliveTimeout: number;
  /** ms before an unused pool is closed */
  readonly idlePoolMs: number;
  readonly connectTimeout: number;
  /** which HTTP/1.1 client each origin's pool is (config.upstreamClient) */
  readonly client: UpstreamClient;
  /**
   * Connections to `host` leave from `localAddress` (inbound delivery to the pod IP from the
   * passthrough source, which remora-init never captures again; inbound/target.ts).
   */
  readonly bind?: { readonly host: string; readonly localAddress: string } | undefined;
  /**
   * Each origin's pool is an HTTP/2 client instead (http2/client.ts: one multiplexed session,
   * h2c prior knowledge): the pools of a listener's HTTP/2 stage, for gRPC and h2 requests.
   */
  readonly http2?: boolean;
}

const DEFAULTS: PoolsOptions = {
  keepAliveTimeout: 4_000,
  idlePoolMs: 60_000,
  connectTimeout: 10_000,
  client: 'codec',
};

export type { UpstreamPool };

/** Something the forwarder can dispatch to (`ForwardDeps.pools`). */
export interface DispatcherSource {
  get(key: string): Dispatcher;
}

interface Slot extends PoolSlot {
  readonly pool: UpstreamPool;
}

class Entry implements InFlight {
  /** requests in flight to this destination under its breaker (the unlimited entry's) */
  inFlight = 0;
  /** the policy `section` was looked up in (the cache key: a new policy is a new object) */
  policy: CompiledPolicy | undefined = undefined;
  section: CompiledOutbound | undefined = undefined;
  /** the breaker's dispatcher for this destination, made on first need */
  guard: Dispatcher | undefined = undefined;
  constructor(
    readonly slot: Slot,
    public lastUsed: number,
  ) {}
}

export class Pools {
  private readonly pools = new Map<string, Entry>();
  private readonly opts: PoolsOptions;
  private readonly sweeper: NodeJS.Timeout;
  private now = Date.now();
  private policy: PolicySource | undefined = undefined;
  private counters: BreakerCounters | undefined = undefined;

  constructor(opts: Partial<PoolsOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
    // One clock read per second instead of one per request.
    this.sweeper = setInterval(() => this.sweep(), 1_000);
    this.sweeper.unref();
  }

  /** Puts the outbound view under `policy`'s circuit breakers (refusals count into `metrics`). */
  usePolicy(policy: PolicySource, metrics: PolicyMetrics): void {
    this.policy = policy;
    this.counters = new BreakerCounters(metrics);
  }

  private localAddress(key: string): string | undefined {
    const b = this.opts.bind;
    if (b === undefined) return undefined;
    const host = key.slice(0, key.lastIndexOf(':'));
    return host === b.host || host === `[${b.host}]` ? b.localAddress : undefined;
  }

  private make(key: string, connections: number | undefined): Slot {
    const o = this.opts;
    const pool = o.http2
      ? new H2Origin(key, {
          connectTimeout: o.connectTimeout,
          idleTimeout: o.idlePoolMs,
          localAddress: this.localAddress(key),
        })
      : this.create(key, connections, undefined);
    return { pool, connections, pending: 0 };
  }

  /**
   * A new pool for origin `key` with at most `connections` connections, of the configured
   * client; `connect` opens each connection's transport (the mesh's tunnel) instead of TCP.
   */
  create(key: string, connections: number | undefined, connect: Connector | undefined): UpstreamPool {
    const o = this.opts;
    const localAddress = connect === undefined ? this.localAddress(key) : undefined;
    if (o.client === 'undici') return this.undici(key, connections, localAddress, connect);
    return new ClientPool(key, {
      keepAliveTimeout: o.keepAliveTimeout,
      connectTimeout: o.connectTimeout,
      connections,
      localAddress,
      connect,
    });
  }

  private undici(
    key: string,
    connections: number | undefined,
    localAddress: string | undefined,
    connect: Connector | undefined,
  ): UpstreamPool {
    const { Pool } = createRequire(import.meta.url)('undici') as { Pool: typeof UndiciPool };
    const pool = new Pool(`http://${key}`, {
      pipelining: 1,
      // undefined = unlimited, undici's default
      connections: connections ?? null,
      keepAliveTimeout: this.opts.keepAliveTimeout,
      keepAliveMaxTimeout: this.opts.keepAliveTimeout,
      connectTimeout: this.opts.connectTimeout,
      // No timeouts on headers/body: a long poll or a slow stream is the app's business;
      // the client's own disconnect aborts the upstream request.
      headersTimeout: 0,
      bodyTimeout: 0,
      connect:
        connect === undefined
          ? { noDelay: true }
          : (_opts, cb) =>
              connect((err, s) =>
                err === null && s !== undefined ? cb(null, s) : cb(err ?? new Error('no socket'), null),
              ),
      ...(localAddress !== undefined ? { localAddress } : {}),
    });
    return new UndiciAdapter(pool);
  }

  private entry(key: string, connections: number | undefined): Entry {
    const id = connections === undefined ? key : `${key} c=${connections}`;
    let e = this.pools.get(id);
    if (e === undefined) {
      e = new Entry(this.make(key, connections), this.now);
      this.pools.set(id, e);
    }
    e.lastUsed = this.now;
    return e;
  }

  /** true when every pool is an HTTP/2 client (`http2` option) */
  get http2(): boolean {
    return this.opts.http2 === true;
  }

  /** The origin's unlimited pool (inbound; the mesh wraps it itself). */
  get(key: string): UpstreamPool {
    return this.entry(key, undefined).slot.pool;
  }

  /** The origin's pool with at most `connections` connections (undefined: unlimited). */
  slot(key: string, connections: number | undefined): PoolSlot {
    return this.entry(key, connections).slot;
  }

  private view: DispatcherSource | undefined = undefined;

  /**
   * The outbound listener's dispatchers: the plain pool, or the breaker over it. Without a
   * policy source (`usePolicy` not called before this is read) it is the pools themselves, so
   * an engine without policy runs exactly the code it ran before.
   */
  get outbound(): DispatcherSource {
    if (this.policy === undefined) return this;
    return (this.view ??= { get: (key) => this.outboundGet(key) });
  }

  private outboundGet(key: string): Dispatcher {
    // The destination's entry (its unlimited pool) also holds its policy and in-flight count.
    const e = this.entry(key, undefined);
    const cur = (this.policy as PolicySource).current;
    if (cur === undefined) return e.slot.pool;
    if (e.policy !== cur) {
      e.policy = cur;
      e.section = cur.outbound(key, portOf(key));
    }
    const cb = e.section?.circuitBreaker;
    if (cb === undefined) return e.slot.pool;
    if (cb.maxRequests === undefined && cb.maxPendingRequests === undefined)
      return this.slot(key, cb.maxConnections).pool;
    return (e.guard ??= {
      dispatch: (opts, handler) => {
        const now = e.section?.circuitBreaker;
        return guardedDispatch(
          key,
          e,
          now,
          this.slot(key, now?.maxConnections),
          opts,
          handler,
          this.counters as BreakerCounters,
          undefined,
        );
      },
    });
  }

  private sweep(): void {
    this.now = Date.now();
    for (const [key, e] of this.pools) {
      const s = e.slot.pool.stats;
      if (
        this.now - e.lastUsed > this.opts.idlePoolMs &&
        s.running === 0 &&
        s.pending === 0 &&
        e.inFlight === 0
      ) {
        this.pools.delete(key);
        e.slot.pool.close().catch(() => undefined);
      }
    }
  }

  /** Open upstream connections across every pool (tests and /config). */
  connected(): number {
    let n = 0;
    for (const e of this.pools.values()) n += e.slot.pool.stats.connected;
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.pools.values()].map((e) => e.slot.pool.close());
    this.pools.clear();
    await Promise.allSettled(all);
  }

  destroy(): void {
    clearInterval(this.sweeper);
    for (const e of this.pools.values()) e.slot.pool.destroy().catch(() => undefined);
    this.pools.clear();
  }
}

/**
 * An undici Pool behind the dispatch contract (http/dispatch.ts): undici's classic callbacks,
 * except that a head's raw Buffers become the latin1 strings the contract carries.
 */
class UndiciAdapter implements UpstreamPool {
  constructor(private readonly pool: UndiciPool) {}

  get stats(): PoolStats {
    return this.pool.stats;
  }

  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    return this.pool.dispatch(
      opts as unknown as Parameters<UndiciPool['dispatch']>[0],
      new StringHeads(handler) as unknown as Parameters<UndiciPool['dispatch']>[1],
    );
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/** A handler given undici's callbacks: the head's Buffers decoded, everything else as it came. */
class StringHeads {
  constructor(private readonly h: DispatchHandler) {}
  onConnect(abort: (err?: Error) => void): void {
    this.h.onConnect?.(abort);
  }
  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const flat = new Array<string>(raw.length);
    for (let i = 0; i < raw.length; i++) flat[i] = (raw[i] as Buffer).toString('latin1');
    return this.h.onHeaders?.(statusCode, flat, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.h.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    this.h.onComplete?.(trailers);
  }
  onError(err: Error): void {
    this.h.onError?.(err);
  }
  onUpgrade(statusCode: number, raw: Buffer[] | string[] | null, socket: Socket): void {
    this.h.onUpgrade?.(statusCode, raw, socket);
  }
}
