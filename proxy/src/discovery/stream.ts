/**
 * Discovery from the injector's stream (REMORA_DISCOVERY_ADDRESS, docs/mtls.md): a destination
 * is subscribed the first time the app dials it (on demand), one long-lived HTTPS GET per
 * destination answering NDJSON lines. The first line of every (re)connection is a snapshot, so
 * a reconnect resyncs by itself; while reconnecting, the last known endpoints keep serving.
 */
import https from 'node:https';
import type { ClientRequest } from 'node:http';
import { CA_PATHS } from '../contract.js';
import type { Target } from '../config/config.js';
import { expectIdentity } from '../identity/identity.js';
import type { Logger } from '../log.js';
import { parseDiscovery } from './static.js';
import type { Discovery, Endpoint } from './static.js';

interface Entry {
  endpoints: readonly Endpoint[] | undefined;
  resolved: boolean;
  waiters: ((eps: readonly Endpoint[] | undefined) => void)[];
  req: ClientRequest | undefined;
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

export interface StreamDiscoveryOptions {
  readonly address: Target;
  /** roots to verify the injector with, and the identity it must present */
  readonly caBundle: string;
  readonly serverIdentity: string;
  readonly log: Logger;
  /** how long a first dial waits for the answer before going where the app dialled */
  readonly firstAnswerMs?: number;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
}

const DEFAULT_BACKOFF = Object.freeze({ baseMs: 250, maxMs: 10_000 });

export class StreamDiscovery implements Discovery {
  private readonly entries = new Map<string, Entry>();
  private stopped = false;

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

  /** Destinations subscribed so far. */
  subscribed(): string[] {
    return [...this.entries.keys()];
  }

  private subscribe(key: string): Entry {
    const e: Entry = {
      endpoints: undefined,
      resolved: false,
      waiters: [],
      req: undefined,
      failures: 0,
      timer: undefined,
    };
    this.entries.set(key, e);
    this.connect(key, e);
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
    e.failures = 0;
    for (const w of e.waiters.splice(0)) w(e.endpoints);
  }

  private connect(key: string, e: Entry): void {
    if (this.stopped) return;
    let buf = '';
    const req = https.get(
      {
        host: this.o.address.host,
        port: this.o.address.port,
        path: `${CA_PATHS.discovery}?dest=${encodeURIComponent(key)}`,
        ca: this.o.caBundle,
        checkServerIdentity: expectIdentity(this.o.serverIdentity),
        agent: false,
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          req.destroy(new Error(`discovery answered ${res.statusCode}`));
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            let msg: { dest?: unknown; endpoints?: unknown };
            try {
              msg = JSON.parse(line) as typeof msg;
            } catch {
              continue;
            }
            if (msg.dest === key) this.update(key, e, msg.endpoints ?? null);
          }
        });
        res.on('close', () => this.retry(key, e, new Error('stream ended')));
      },
    );
    req.on('error', (err) => this.retry(key, e, err));
    e.req = req;
  }

  private retry(key: string, e: Entry, err: Error): void {
    if (this.stopped || e.req === undefined || e.timer !== undefined) return;
    e.req = undefined;
    e.failures += 1;
    const b = this.o.backoff ?? DEFAULT_BACKOFF;
    const cap = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(e.failures - 1, 16));
    const delay = cap / 2 + (Math.random() * cap) / 2;
    this.o.log.warn(
      { event: 'discovery_stream_lost', dest: key, retryMs: Math.round(delay), err: err.message },
      'discovery stream lost: keeping the last endpoints, reconnecting',
    );
    e.timer = setTimeout(() => {
      e.timer = undefined;
      this.connect(key, e);
    }, delay);
    e.timer.unref();
  }

  close(): void {
    this.stopped = true;
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      const r = e.req;
      e.req = undefined;
      r?.destroy();
    }
  }
}
