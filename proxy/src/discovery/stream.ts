/**
 * Discovery from the injector's stream (REMORA_DISCOVERY_ADDRESS, docs/mtls.md): a destination
 * is subscribed the first time the app dials it (on demand), one long-lived HTTPS GET per
 * destination answering NDJSON lines, authenticated with the workload certificate. The first
 * line of every (re)connection is a snapshot, so a reconnect resyncs by itself; while
 * reconnecting, the last known endpoints keep serving.
 *
 * An app dialling many addresses (a scanner, a crawler) must not turn into as many streams:
 *   - at most `maxEntries` destinations are subscribed; a new one evicts the least recently
 *     used (recency counted in subscriptions and sweeps, not in clock time);
 *   - a destination unused for `idleMs` (one to two sweeps) is unsubscribed;
 *   - new subscriptions are budgeted (`subscribeRate`); past it, a new destination is not
 *     subscribed and answers "unknown" at once, so the connection goes where the app dialled,
 *     as for any address discovery does not know. An address that is not a service costs at
 *     most one short-lived entry.
 * Lookups only store a number: the hot path does no bookkeeping beyond that.
 */
import { CA_PATHS } from '../contract.js';
import type { Target } from '../config/config.js';
import type { Logger } from '../log.js';
import { ndjsonStream } from './ndjson.js';
import type { Backoff, ClientCredentials, NdjsonStream } from './ndjson.js';
import { parseDiscovery, workloadsByIdentity } from './static.js';
import type { Discovery, Endpoint } from './static.js';

interface Entry {
  endpoints: readonly Endpoint[] | undefined;
  resolved: boolean;
  /** `epoch` when last used */
  lastUsed: number;
  waiters: ((eps: readonly Endpoint[] | undefined) => void)[];
  stream: NdjsonStream | undefined;
}

export const DEFAULT_MAX_DESTINATIONS = 256;
export const DEFAULT_IDLE_MS = 5 * 60_000;
export const DEFAULT_SUBSCRIBE_RATE = Object.freeze({ perSecond: 20, burst: 64 });

export interface StreamDiscoveryOptions {
  readonly address: Target;
  /** roots to verify the injector with, and the identity it must present */
  readonly caBundle: string;
  readonly serverIdentity: string;
  /** the workload certificate presented to the injector (it refuses streams without one) */
  readonly credentials?: ClientCredentials;
  readonly log: Logger;
  /** how long a first dial waits for the answer before going where the app dialled */
  readonly firstAnswerMs?: number;
  readonly backoff?: Backoff;
  /** destinations subscribed at most (DEFAULT_MAX_DESTINATIONS) */
  readonly maxEntries?: number;
  /** a destination unused this long is unsubscribed (DEFAULT_IDLE_MS) */
  readonly idleMs?: number;
  /** budget of new subscriptions (DEFAULT_SUBSCRIBE_RATE) */
  readonly subscribeRate?: { readonly perSecond: number; readonly burst: number };
  readonly now?: () => number;
}

export interface StreamDiscoveryStats {
  /** destinations unsubscribed: idle, or pushed out by newer ones */
  evictedIdle: number;
  evictedForRoom: number;
  /** first dials that found the subscription budget spent (answered "unknown") */
  notSubscribed: number;
}

export class StreamDiscovery implements Discovery {
  private readonly entries = new Map<string, Entry>();
  private stopped = false;
  private readonly sweeper: NodeJS.Timeout;
  private tokens: number;
  private tokensAt: number;
  private readonly now: () => number;
  private lastWarn = -Infinity;
  /** advances at every new subscription and every sweep: the unit of recency */
  private epoch = 0;
  private sweptAt = 0;
  readonly stats: StreamDiscoveryStats = { evictedIdle: 0, evictedForRoom: 0, notSubscribed: 0 };
  /** identity → workload over the known endpoints; rebuilt after an update */
  private workloads: ReadonlyMap<string, string | undefined> | undefined;

  constructor(private readonly o: StreamDiscoveryOptions) {
    this.now = o.now ?? Date.now;
    this.tokens = (o.subscribeRate ?? DEFAULT_SUBSCRIBE_RATE).burst;
    this.tokensAt = this.now();
    this.sweeper = setInterval(() => this.sweep(), o.idleMs ?? DEFAULT_IDLE_MS);
    this.sweeper.unref();
  }

  lookup(key: string): readonly Endpoint[] | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    e.lastUsed = this.epoch;
    return e.endpoints;
  }

  pending(key: string): Promise<readonly Endpoint[] | undefined> | undefined {
    let e = this.entries.get(key);
    if (e?.resolved) {
      e.lastUsed = this.epoch;
      return undefined;
    }
    if (!e) {
      if (!this.admit()) return undefined;
      e = this.subscribe(key);
      if (e === undefined) return undefined;
    }
    const entry = e;
    return new Promise((resolve) => {
      entry.waiters.push(resolve);
      setTimeout(() => resolve(entry.endpoints), this.o.firstAnswerMs ?? 3000).unref();
    });
  }

  /**
   * Only the destinations this proxy subscribed to are known here, so a caller this proxy never
   * calls back reads its service account name instead (metrics/peer.ts).
   */
  workloadOf(identity: string): string | undefined {
    this.workloads ??= workloadsByIdentity([...this.entries.values()].map((e) => e.endpoints));
    return this.workloads.get(identity);
  }

  /** Destinations subscribed now. */
  subscribed(): string[] {
    return [...this.entries.keys()];
  }

  /** Unsubscribes what was not used since the previous sweep. */
  sweep(): void {
    const cutoff = this.sweptAt;
    this.sweptAt = ++this.epoch;
    for (const [k, e] of this.entries) {
      if (e.lastUsed < cutoff && e.waiters.length === 0) {
        this.evict(k, e);
        this.stats.evictedIdle += 1;
      }
    }
  }

  /** One token of the subscription budget, or false (counted, warned about once a minute). */
  private admit(): boolean {
    const rate = this.o.subscribeRate ?? DEFAULT_SUBSCRIBE_RATE;
    const now = this.now();
    this.tokens = Math.min(rate.burst, this.tokens + ((now - this.tokensAt) / 1000) * rate.perSecond);
    this.tokensAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.refused(now, 'the app dials new destinations faster than discovery subscribes');
    return false;
  }

  private refused(now: number, why: string): void {
    this.stats.notSubscribed += 1;
    if (now - this.lastWarn < 60_000) return;
    this.lastWarn = now;
    this.o.log.warn(
      {
        event: 'discovery_not_subscribed',
        notSubscribed: this.stats.notSubscribed,
        subscribed: this.entries.size,
      },
      `${why}: new destinations go where the app dialled, unresolved`,
    );
  }

  /**
   * Makes room under the cap by evicting the least recently used (the oldest first on a tie);
   * false when every entry is still waiting for its first answer. O(cap), on a new
   * subscription only, which the budget bounds.
   */
  private makeRoom(): boolean {
    const max = this.o.maxEntries ?? DEFAULT_MAX_DESTINATIONS;
    while (this.entries.size >= max) {
      let victim: [string, Entry] | undefined;
      for (const kv of this.entries)
        if (kv[1].waiters.length === 0 && (victim === undefined || kv[1].lastUsed < victim[1].lastUsed))
          victim = kv;
      if (victim === undefined) return false;
      this.evict(victim[0], victim[1]);
      this.stats.evictedForRoom += 1;
    }
    return true;
  }

  private evict(key: string, e: Entry): void {
    this.entries.delete(key);
    e.stream?.close();
    for (const w of e.waiters.splice(0)) w(e.endpoints);
  }

  private subscribe(key: string): Entry | undefined {
    if (!this.makeRoom()) {
      this.refused(this.now(), `${this.entries.size} destinations are waiting for their first answer`);
      return undefined;
    }
    const e: Entry = {
      endpoints: undefined,
      resolved: false,
      lastUsed: ++this.epoch,
      waiters: [],
      stream: undefined,
    };
    this.entries.set(key, e);
    if (this.stopped) return e;
    e.stream = ndjsonStream({
      address: this.o.address,
      path: `${CA_PATHS.discovery}?dest=${encodeURIComponent(key)}`,
      caBundle: this.o.caBundle,
      serverIdentity: this.o.serverIdentity,
      ...(this.o.credentials !== undefined ? { credentials: this.o.credentials } : {}),
      ...(this.o.backoff !== undefined ? { backoff: this.o.backoff } : {}),
      onMessage: (msg) => {
        if (msg.dest === key) this.update(key, e, msg.endpoints ?? null);
      },
      onLost: (err, retryMs) =>
        this.o.log.warn(
          { event: 'discovery_stream_lost', dest: key, retryMs, err: err.message },
          'discovery stream lost: keeping the last endpoints, reconnecting',
        ),
    });
    return e;
  }

  private update(key: string, e: Entry, raw: unknown): void {
    try {
      e.endpoints =
        raw === null
          ? undefined
          : parseDiscovery(JSON.stringify({ services: { [key]: { endpoints: raw } } })).get(key);
    } catch (err) {
      this.o.log.warn(
        { event: 'discovery_invalid', dest: key, err: (err as Error).message },
        'bad discovery update ignored',
      );
      return;
    }
    e.resolved = true;
    this.workloads = undefined;
    for (const w of e.waiters.splice(0)) w(e.endpoints);
  }

  close(): void {
    this.stopped = true;
    clearInterval(this.sweeper);
    for (const e of this.entries.values()) e.stream?.close();
  }
}
