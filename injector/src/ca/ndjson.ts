/**
 * The server side of the injector's streams on the CA listener (discovery, policy): one
 * never-ending `application/x-ndjson` answer, a snapshot line at once, a line per change, and a
 * `{}` heartbeat so proxies and middleboxes see a live connection. Every stream starts with a
 * snapshot, which is what makes a proxy's reconnect a full resync.
 *
 * Every stream goes through one StreamHub, which is what lets the control plane survive one
 * noisy pod:
 *   - the client proves its workload identity with the certificate the mesh CA issued it (TLS
 *     client certificate, one SPIFFE URI in our trust domain); no certificate, no stream (401);
 *   - streams are capped per client (identity and address: one pod, 429) and in total (503);
 *   - a subscriber that stops reading cannot grow the injector's heap: once a stream's
 *     unsent bytes would pass `maxBufferedBytes` it is closed and counted; it resyncs from a
 *     snapshot when it reconnects, so nothing is lost but the backlog;
 *   - a stream outliving its client's certificate is ended at the next heartbeat.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';

export const HEARTBEAT_MS = 15_000;

export interface StreamLimits {
  /** open streams of one client (identity + address); a proxy caps its own below this */
  readonly maxPerClient: number;
  /** open streams of everyone */
  readonly maxTotal: number;
  /** unsent bytes one stream may hold before it is closed as too slow */
  readonly maxBufferedBytes: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = Object.freeze({
  // Above the proxy's own cap (proxy/src/discovery/stream.ts, 256 destinations) plus its policy stream.
  maxPerClient: 512,
  maxTotal: 20_000,
  maxBufferedBytes: 1024 * 1024,
});

export type StreamRefusal =
  'no_client_certificate' | 'foreign_identity' | 'too_many_streams_per_client' | 'too_many_streams';

export interface StreamStats {
  open: number;
  opened: number;
  refused: Partial<Record<StreamRefusal, number>>;
  /** streams closed because their subscriber did not read */
  slowClosed: number;
  /** the largest number of unsent bytes any stream held right after a write */
  peakBufferedBytes: number;
}

/** A client that proved who it is: its SPIFFE identity, and the key its streams are counted by. */
export interface StreamClient {
  readonly identity: string;
  readonly key: string;
  readonly notAfter: number;
}

/** Each refusal's status and what it tells the client. */
const REFUSALS: Record<StreamRefusal, { status: number; message: (l: StreamLimits) => string }> = {
  no_client_certificate: {
    status: 401,
    message: () => 'a stream needs the workload certificate the mesh CA issued as TLS client certificate',
  },
  foreign_identity: {
    status: 403,
    message: () => 'the client certificate names no identity of this trust domain',
  },
  too_many_streams_per_client: {
    status: 429,
    message: (l) => `this client has ${l.maxPerClient} streams open already`,
  },
  too_many_streams: { status: 503, message: (l) => `the injector serves ${l.maxTotal} streams already` },
};

export class StreamHub {
  readonly stats: StreamStats = { open: 0, opened: 0, refused: {}, slowClosed: 0, peakBufferedBytes: 0 };
  private readonly perClient = new Map<string, number>();
  private readonly prefix: string;

  constructor(
    trustDomain: string,
    private readonly logger: Logger,
    private readonly limits: StreamLimits = DEFAULT_STREAM_LIMITS,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {
    this.prefix = `spiffe://${trustDomain}/`;
  }

  /** Open streams of the client with `key` (tests, logs). */
  openFor(key: string): number {
    return this.perClient.get(key) ?? 0;
  }

  /** The verified client of `req`, or why it is refused. */
  authenticate(req: IncomingMessage): StreamClient | StreamRefusal {
    const socket = req.socket as TLSSocket;
    if (typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return 'no_client_certificate';
    const cert = socket.getPeerCertificate();
    const uris = (cert.subjectaltname ?? '')
      .split(', ')
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
    const identity = uris[0];
    if (uris.length !== 1 || identity === undefined || !identity.startsWith(this.prefix))
      return 'foreign_identity';
    return {
      identity,
      key: `${identity}@${socket.remoteAddress ?? ''}`,
      notAfter: Date.parse(cert.valid_to),
    };
  }

  /**
   * Answers `res` with `snapshot`, then every value `subscribe` delivers; unsubscribes when the
   * client goes away. Refuses (and answers) when the client is not authenticated or over a cap.
   */
  serve(
    req: IncomingMessage,
    res: ServerResponse,
    snapshot: unknown,
    subscribe: (send: (line: unknown) => void) => () => void,
  ): void {
    const client = this.authenticate(req);
    if (typeof client === 'string') return this.refuse(req, res, client, undefined);
    if (this.stats.open >= this.limits.maxTotal) return this.refuse(req, res, 'too_many_streams', client);
    const mine = this.perClient.get(client.key) ?? 0;
    if (mine >= this.limits.maxPerClient) return this.refuse(req, res, 'too_many_streams_per_client', client);
    this.perClient.set(client.key, mine + 1);
    this.stats.open += 1;
    this.stats.opened += 1;

    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    let closed = false;
    const write = (text: string): void => {
      if (closed) return;
      // writableLength counts what the socket has not sent yet, queued in this process.
      if (res.writableLength + text.length > this.limits.maxBufferedBytes) {
        this.stats.slowClosed += 1;
        this.logger.warn(
          {
            event: 'stream_slow_closed',
            identity: client.identity,
            peer: req.socket.remoteAddress,
            path: req.url,
            bufferedBytes: res.writableLength,
          },
          'stream closed: its subscriber does not read',
        );
        res.destroy();
        return;
      }
      res.write(text);
      if (res.writableLength > this.stats.peakBufferedBytes)
        this.stats.peakBufferedBytes = res.writableLength;
    };
    write(`${JSON.stringify(snapshot)}\n`);
    const unsubscribe = subscribe((line) => write(`${JSON.stringify(line)}\n`));
    const beat = setInterval(() => {
      // A renewed proxy reconnects with its new certificate; the old stream ends with the old one.
      if (Date.now() >= client.notAfter) res.destroy();
      else write('{}\n');
    }, this.heartbeatMs);
    beat.unref();
    res.on('close', () => {
      closed = true;
      clearInterval(beat);
      unsubscribe();
      this.stats.open -= 1;
      const n = (this.perClient.get(client.key) ?? 1) - 1;
      if (n === 0) this.perClient.delete(client.key);
      else this.perClient.set(client.key, n);
    });
  }

  private refuse(
    req: IncomingMessage,
    res: ServerResponse,
    reason: StreamRefusal,
    client: StreamClient | undefined,
  ): void {
    this.stats.refused[reason] = (this.stats.refused[reason] ?? 0) + 1;
    const { status, message: say } = REFUSALS[reason];
    const message = say(this.limits);
    this.logger.warn(
      {
        event: 'stream_refused',
        reason,
        identity: client?.identity,
        peer: req.socket.remoteAddress,
        path: req.url,
      },
      `stream refused: ${message}`,
    );
    const body = JSON.stringify({ error: message, reason });
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...(status === 429 || status === 503 ? { 'retry-after': '10' } : {}),
    });
    res.end(body);
  }
}

/** A JSON 400 naming the one request form the route accepts. */
export function badRequest(res: ServerResponse, usage: string): void {
  res.writeHead(400, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: usage }));
}
