/**
 * The upstream dispatch contract (the forwarder, upgrades, the breaker and the mesh speak it):
 * `dispatch(opts, handler)` sends one request, and the handler's callbacks report it in order:
 * onConnect (it has a connection; `abort` stops it), onHeaders for each response head (1xx
 * included only where a client reports them; ours skips them), onData per body chunk (false:
 * pause until `resume`), then exactly one of onComplete, onError or onUpgrade. It is the shape
 * of undici's classic callback API, except that a head's fields are strings, not Buffers (the
 * codec decodes a head once; undici's Buffers are decoded by the adapter in pools.ts, where an
 * undici Pool is kept: REMORA_UPSTREAM_CLIENT=undici); nothing here depends on undici.
 */
import type { Socket } from 'node:net';
import type { ResponseHead } from '../http1/head.js';

/** The empty `rawHeaders` a handler that takesFields gets (frozen: nobody adds to it). */
export const NO_FIELDS: string[] = Object.freeze([]) as unknown as string[];

/** A head's fields as strings: as given, or decoded from the codec's head (NO_FIELDS given). */
export function fieldStrings(given: string[], fields: ResponseHead | undefined): string[] {
  return fields !== undefined && given.length === 0 ? fields.toArray() : given;
}

/** A request body as the forwarder hands it over: the client's request stream (or a Buffer). */
export interface RequestBody {
  on(event: 'data', fn: (chunk: Buffer | string) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  off(event: 'data', fn: (chunk: Buffer | string) => void): unknown;
  off(event: 'end' | 'close', fn: () => void): unknown;
  off(event: 'error', fn: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(err?: Error): unknown;
  readonly readableDidRead: boolean;
  readonly destroyed: boolean;
  readonly readableEnded?: boolean;
  /** trailer fields to send after a chunked body (flat, filtered), read at 'end' */
  readonly trailers?: readonly string[] | null;
}

/**
 * What the HTTP/1 parser already checked, as the layers got it: the request target and the
 * forwarded fields (flat). The encoder (http1/pool.ts) skips its checks for `path` when equal to
 * `path` here and for an entry of `headers` equal to the one at the same index of `fields`: the
 * parser let through only tokens as names and no control character but HTAB in a value, which
 * is all the encoder asks. A layer's change or addition differs, and is checked as before.
 *
 * With `lines`, such an entry goes out as the line it came in: `text` is the head as received
 * (latin1), and `lines[i]`, `lines[i + 1]` are where the line of the field at `fields[i]`
 * starts and ends (through its CRLF) in it. The encoder cuts runs of adjacent lines out of
 * `text`, so a head the layers left alone is one slice, not four strings per field.
 */
export class CheckedHead {
  constructor(
    readonly path: string,
    /** a copy: the layers change `headers`, never this */
    readonly fields: readonly string[],
    readonly text = '',
    /** empty, or as long as `fields` */
    readonly lines: readonly number[] = NO_LINES,
  ) {}

  /**
   * Fields (flat) a layer wrote that the proxy formatted itself from parts it had validated:
   * the trace context's `traceparent`, hex ids and flags (telemetry/layer.ts). An entry equal
   * to one of these is sent unchecked too; the encoder's character scan of a value built by
   * concatenation cost ~2,500 instructions (it pays a flatten and a per-character dispatch).
   * Empty until `addOwn` (no list per request when no layer adds one).
   */
  own: readonly string[] = NO_OWN;

  addOwn(name: string, value: string): void {
    this.own = this.own === NO_OWN ? [name, value] : [...this.own, name, value];
  }
}

const NO_OWN: readonly string[] = Object.freeze([]);

const NO_LINES: readonly number[] = Object.freeze([]);

export interface DispatchOptions {
  /** origin-form target */
  readonly path: string;
  readonly method: string;
  /** flat [name, value, ...]; hop-by-hop fields already removed (http/headers.ts) */
  readonly headers?: readonly string[] | null | undefined;
  /** what of `path` and `headers` the HTTP/1 parser checked (only it sets this) */
  readonly checked?: CheckedHead | undefined;
  readonly body?: RequestBody | Buffer | string | null | undefined;
  /** the protocol(s) to upgrade to: sends `Upgrade` and `Connection: upgrade`, 101 → onUpgrade */
  readonly upgrade?: string | null | undefined;
}

export interface DispatchHandler {
  /**
   * The handler reads a head from our HTTP/1 codec off `fields` (onHeaders' 5th argument): the
   * codec then passes an empty `rawHeaders` (NO_FIELDS) instead of decoding every name and value
   * (fields.toArray() gives them where needed). Other clients pass strings and no `fields`.
   */
  readonly takesFields?: boolean;
  onConnect?(abort: (err?: Error) => void): void;
  /**
   * The response head as a flat [name, value, ...] list of latin1 strings, as received (names
   * in their case, hop-by-hop fields still in). false pauses the body until `resume()`.
   * `fields`, from our HTTP/1 codec only: the parsed head (http1/head.ts; `kinds[i]` tells what
   * field i is), the codec's scratch, valid during this call only. With `fields` given, a
   * handler that `takesFields` gets an empty `rawHeaders`; one that does not gets both.
   */
  onHeaders?(
    statusCode: number,
    rawHeaders: string[],
    resume: () => void,
    statusText: string,
    fields?: ResponseHead,
  ): boolean;
  /** false pauses the body until the `resume` given with the head */
  onData?(chunk: Buffer): boolean;
  /** flat [name, value, ...] trailers, or null without a trailer section */
  onComplete?(trailers: string[] | Buffer[] | null): void;
  onError?(err: Error): void;
  /** a 101 to a request with `upgrade`: the socket is the caller's from now on */
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Socket): void;
}

export interface Dispatcher {
  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean;
}

/** What pools report (a client pool, or an undici Pool's `stats`). */
export interface PoolStats {
  readonly connected: number;
  readonly free: number;
  readonly pending: number;
  readonly queued: number;
  readonly running: number;
  readonly size: number;
}

/** An origin's pool as pools.ts, the breaker and the mesh hold it. */
export interface UpstreamPool extends Dispatcher {
  readonly stats: PoolStats;
  close(): Promise<void>;
  destroy(): Promise<void>;
}
