/**
 * One long-lived HTTPS GET answering NDJSON lines, reconnected with capped, jittered backoff:
 * the client side of every injector stream (discovery per destination, the policy document).
 * The injector's identity is checked on every (re)connection; each stream's first line is a
 * snapshot, so the caller needs no resync logic beyond "apply what arrives".
 */
import https from 'node:https';
import type { ClientRequest } from 'node:http';
import type { Target } from '../config/config.js';
import { expectIdentity } from '../identity/identity.js';

export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = Object.freeze({ baseMs: 250, maxMs: 10_000 });

/** A line longer than this is a broken or hostile server: the stream is dropped and redialled. */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

/**
 * The workload certificate a stream presents to the injector, which refuses streams without
 * one. `current()` is read at every (re)connection, so a renewed certificate is used from the
 * next one on; before the first certificate, connecting waits for `first()`.
 */
export interface ClientCredentials {
  current(): { readonly keyPem: string; readonly certPem: string } | undefined;
  first(): Promise<unknown>;
}

export interface NdjsonStreamOptions {
  readonly address: Target;
  /** path and query, e.g. `/v1/discovery?dest=10.96.0.10%3A80` */
  readonly path: string;
  /** roots to verify the injector with, and the identity it must present */
  readonly caBundle: string;
  readonly serverIdentity: string;
  readonly credentials?: ClientCredentials;
  readonly backoff?: Backoff;
  /** every JSON object line, heartbeats (`{}`) included; a line that is not JSON is skipped */
  readonly onMessage: (msg: Record<string, unknown>) => void;
  /** the stream broke (or never came up); it is redialled after `retryMs` */
  readonly onLost: (err: Error, retryMs: number) => void;
}

export interface NdjsonStream {
  close(): void;
}

export class StreamStatusError extends Error {
  constructor(readonly status: number) {
    super(`stream answered ${status}`);
  }
}

export function ndjsonStream(o: NdjsonStreamOptions): NdjsonStream {
  let req: ClientRequest | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let stopped = false;

  const retry = (from: ClientRequest, err: Error): void => {
    // Both `error` and `close` report one loss; only the live request's first report counts.
    if (stopped || req !== from || timer !== undefined) return;
    req = undefined;
    failures += 1;
    const b = o.backoff ?? DEFAULT_BACKOFF;
    const cap = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(failures - 1, 16));
    const delay = cap / 2 + (Math.random() * cap) / 2;
    o.onLost(err, Math.round(delay));
    timer = setTimeout(() => {
      timer = undefined;
      connect();
    }, delay);
    timer.unref();
  };

  let waiting = false;
  const connect = (): void => {
    if (stopped) return;
    const creds = o.credentials?.current();
    if (o.credentials !== undefined && creds === undefined) {
      // No certificate yet: the injector would refuse us. Dial once the first one is here.
      if (waiting) return;
      waiting = true;
      void o.credentials.first().then(() => {
        waiting = false;
        connect();
      });
      return;
    }
    let buf = '';
    const r = https.get(
      {
        host: o.address.host,
        port: o.address.port,
        path: o.path,
        ca: o.caBundle,
        ...(creds !== undefined ? { key: creds.keyPem, cert: creds.certPem } : {}),
        checkServerIdentity: expectIdentity(o.serverIdentity),
        agent: false,
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          r.destroy(new StreamStatusError(res.statusCode ?? 0));
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            let msg: unknown;
            try {
              msg = JSON.parse(line);
            } catch {
              continue;
            }
            if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) continue;
            // A line arrived whole: the server is healthy again, so the next loss starts small.
            failures = 0;
            o.onMessage(msg as Record<string, unknown>);
            if (stopped || req !== r) return;
          }
          if (buf.length > MAX_LINE_BYTES) r.destroy(new Error(`a line longer than ${MAX_LINE_BYTES} bytes`));
        });
        res.on('close', () => retry(r, new Error('stream ended')));
      },
    );
    r.on('error', (err) => retry(r, err));
    req = r;
  };

  connect();
  return {
    close(): void {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      const r = req;
      req = undefined;
      r?.destroy();
    },
  };
}
