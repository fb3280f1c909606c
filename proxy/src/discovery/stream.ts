/**
 * Discovery from the injector's stream (REMORA_DISCOVERY_ADDRESS, docs/mtls.md): a destination
 * is subscribed the first time the app dials it (on demand), one long-lived HTTPS GET per
 * destination answering NDJSON lines. The first line of every (re)connection is a snapshot, so
 * a reconnect resyncs by itself; while reconnecting, the last known endpoints keep serving.
 */
import { CA_PATHS } from '../contract.js';
import type { Target } from '../config/config.js';
import type { Logger } from '../log.js';
import { ndjsonStream } from './ndjson.js';
import type { Backoff, NdjsonStream } from './ndjson.js';
import { parseDiscovery, workloadsByIdentity } from './static.js';
import type { Discovery, Endpoint } from './static.js';

interface Entry {
  endpoints: readonly Endpoint[] | undefined;
  resolved: boolean;
  waiters: ((eps: readonly Endpoint[] | undefined) => void)[];
  stream: NdjsonStream | undefined;
}

export interface StreamDiscoveryOptions {
  readonly address: Target;
  /** roots to verify the injector with, and the identity it must present */
  readonly caBundle: string;
  readonly serverIdentity: string;
  readonly log: Logger;
  /** how long a first dial waits for the answer before going where the app dialled */
  readonly firstAnswerMs?: number;
  readonly backoff?: Backoff;
}

export class StreamDiscovery implements Discovery {
  private readonly entries = new Map<string, Entry>();
  private stopped = false;
  /** identity → workload over the known endpoints; rebuilt after an update */
  private workloads: ReadonlyMap<string, string | undefined> | undefined;

  constructor(private readonly o: StreamDiscoveryOptions) {}

  lookup(key: string): readonly Endpoint[] | undefined {
    return this.entries.get(key)?.endpoints;
  }

  pending(key: string): Promise<readonly Endpoint[] | undefined> | undefined {
    let e = this.entries.get(key);
    if (e?.resolved) return undefined;
    if (!e) e = this.subscribe(key);
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

  /** Destinations subscribed so far. */
  subscribed(): string[] {
    return [...this.entries.keys()];
  }

  private subscribe(key: string): Entry {
    const e: Entry = {
      endpoints: undefined,
      resolved: false,
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
    for (const e of this.entries.values()) e.stream?.close();
  }
}
