/**
 * A sketch of the upstream side on the codec (issue 11: fastpool.ts's job split into codec /
 * connection / pool): one keep-alive HTTP/1.1 connection on a net.Socket that runs one exchange
 * at a time, and a pool of them per origin. Callbacks, not promises or streams: the handler
 * gets the head, body ranges of the socket's own Buffers (returning false pauses the socket:
 * backpressure), the end with trailers, or one error.
 *
 * Not yet (the wiring does it, with fastpool.ts's tests): streamed request bodies (a Buffer
 * body only), the stale keep-alive retry, connect timeouts, limits on connections and pending
 * requests (the breaker's), the server's Keep-Alive timeout.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { UpstreamConnectError, UpstreamResetError } from '../errors.js';
import { BODY_INFORMATIONAL, keepAlive } from './framing.js';
import type { Fields, HeadLimits, ResponseHead } from './head.js';
import { R_DATA, R_END, R_HEAD, ResponseReader } from './reader.js';

const EMPTY = Buffer.alloc(0);

export interface ExchangeHandler {
  /** the final response head (1xx heads are skipped); `body` is a BODY_* of framing.ts */
  onHead(head: ResponseHead, body: number): void;
  /** body bytes buf[start..end); false pauses reading until `resume()` */
  onData(buf: Buffer, start: number, end: number): boolean;
  /** the response is complete; `trailers.count` is 0 without a trailer section */
  onEnd(trailers: Fields): void;
  /** the exchange failed (connect, reset, a malformed response): the connection is gone */
  onError(err: Error): void;
}

export class UpstreamConnection {
  readonly reader: ResponseReader;
  private handler: ExchangeHandler | undefined = undefined;
  private reuse = true;
  private stash: Buffer | undefined = undefined;
  private stashAt = 0;
  private paused = false;
  private eof = false;
  closed = false;
  connected = false;

  constructor(
    readonly socket: Socket,
    limits: HeadLimits,
    private readonly target: string,
    private readonly done: (c: UpstreamConnection, reusable: boolean) => void,
  ) {
    this.reader = new ResponseReader(limits);
    socket.setNoDelay(true);
    socket.on('connect', () => (this.connected = true));
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk, 0));
    socket.on('end', () => this.onEof());
    socket.on('error', (err: Error) =>
      this.fail(
        this.connected
          ? new UpstreamResetError(target, { cause: err })
          : new UpstreamConnectError(target, { cause: err }),
      ),
    );
    socket.on('close', () => this.onClose());
  }

  /** Sends a request (its encoded head, and its whole body if any); the answer goes to `h`. */
  send(head: Buffer, method: string, upgradeAsked: boolean, h: ExchangeHandler, body?: Buffer): void {
    this.handler = h;
    this.reuse = true;
    this.reader.expect(method, upgradeAsked);
    if (body === undefined || body.length === 0) this.socket.write(head);
    else {
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(body);
      this.socket.uncork();
    }
  }

  /** Reading goes on after onData returned false. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const s = this.stash;
    this.stash = undefined;
    // With nothing kept, still ask the reader: the body may have ended with the paused read.
    if (s !== undefined) this.onBytes(s, this.stashAt);
    else this.onBytes(EMPTY, 0);
    if (!this.paused) {
      if (this.eof) this.onEof();
      else this.socket.resume();
    }
  }

  private onBytes(chunk: Buffer, off: number): void {
    const r = this.reader;
    try {
      while (this.handler !== undefined || off < chunk.length) {
        const ev = r.next(chunk, off);
        off = r.pos;
        if (ev === R_HEAD) {
          if (r.body === BODY_INFORMATIONAL) continue;
          this.reuse = keepAlive(r.head, r.body);
          this.handler?.onHead(r.head, r.body);
        } else if (ev === R_DATA) {
          if (this.handler?.onData(chunk, r.dataStart, r.dataEnd) === false) {
            this.paused = true;
            if (off < chunk.length) {
              this.stash = chunk;
              this.stashAt = off;
            }
            this.socket.pause();
            return;
          }
        } else if (ev === R_END) {
          this.complete(off < chunk.length);
          if (this.closed) return;
        } else {
          return;
        }
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private complete(extra: boolean): void {
    const h = this.handler as ExchangeHandler;
    this.handler = undefined;
    h.onEnd(this.reader.decoder.trailers);
    // bytes beyond the response, or a close coming: never reuse
    const reusable = this.reuse && !extra && !this.eof;
    if (!reusable) this.socket.destroy();
    this.done(this, reusable);
  }

  private onEof(): void {
    this.eof = true;
    if (this.paused) return; // resume() finishes first
    if (this.handler === undefined) {
      this.socket.destroy();
      return;
    }
    try {
      this.reader.end();
      // a close-delimited body ends here
      this.onBytes(EMPTY, 0);
    } catch (err) {
      this.fail(err as Error);
    }
    if (this.handler !== undefined) this.fail(new UpstreamResetError(this.target));
  }

  private fail(err: Error): void {
    const h = this.handler;
    this.handler = undefined;
    this.socket.destroy();
    if (h !== undefined) h.onError(err);
  }

  private onClose(): void {
    const wasClosed = this.closed;
    this.closed = true;
    if (this.handler !== undefined) this.fail(new UpstreamResetError(this.target));
    if (!wasClosed) this.done(this, false);
  }
}

export interface UpstreamPoolOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: HeadLimits;
  /** most idle connections kept */
  readonly maxIdle: number;
}

/** Keep-alive connections to one origin: the most recently used idle one first. */
export class UpstreamPool {
  private readonly idle: UpstreamConnection[] = [];
  private readonly all = new Set<UpstreamConnection>();
  private readonly target: string;
  private closing = false;
  private readonly release = (c: UpstreamConnection, reusable: boolean): void => {
    if (!reusable || c.closed || this.closing || this.idle.length >= this.o.maxIdle) {
      if (!c.closed) c.socket.destroy();
      this.all.delete(c);
      const i = this.idle.indexOf(c);
      if (i !== -1) this.idle.splice(i, 1);
      return;
    }
    if (!this.idle.includes(c)) this.idle.push(c);
  };

  constructor(private readonly o: UpstreamPoolOptions) {
    this.target = `${o.host}:${o.port}`;
  }

  /** connections open (idle or busy) */
  get size(): number {
    return this.all.size;
  }

  request(head: Buffer, method: string, h: ExchangeHandler, body?: Buffer): UpstreamConnection {
    let c = this.idle.pop();
    while (c !== undefined && c.closed) c = this.idle.pop();
    if (c === undefined) {
      const s = net.connect({ host: this.o.host, port: this.o.port });
      c = new UpstreamConnection(s, this.o.limits, this.target, this.release);
      this.all.add(c);
    }
    c.send(head, method, false, h, body);
    return c;
  }

  close(): void {
    this.closing = true;
    for (const c of this.all) c.socket.destroy();
    this.idle.length = 0;
  }
}
