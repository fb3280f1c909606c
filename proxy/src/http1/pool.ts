/**
 * One origin's keep-alive pool of codec connections (connection.ts), behind the dispatch
 * contract of http/dispatch.ts: the upstream client of the data path (issue 11; it replaced
 * http/fastpool.ts and undici's Pool). Requests are never pipelined: a connection serves one
 * exchange at a time and goes back to the pool only after a complete response that allows
 * keep-alive; the most recently used idle connection is reused first, so the rest can time
 * out. `connections` caps the connections (the breaker's maxConnections); beyond it requests
 * queue in order.
 *
 * The request head is one latin1 string written with the first body bytes (one write, one
 * TLS record on a tunnel). The forwarder's fields are checked before any byte is sent: a
 * control character, a CR or LF inside a field, a name that is not a token, a method that is
 * not a token or a target with a space or control fails the request with an EncodeError (502
 * RMR_UPSTREAM_PROTOCOL), so nothing the client smuggled can reach the wire. What the HTTP/1
 * parser already checked and no layer changed (DispatchOptions.checked) is not checked twice.
 */
import type {
  DispatchHandler,
  DispatchOptions,
  PoolStats,
  RequestBody,
  UpstreamPool,
} from '../http/dispatch.js';
import { ClientConnection, ClientRequest, clientWheel } from './connection.js';
import type { ConnectionOwner, Connector } from './connection.js';
import { EncodeError } from './encode.js';
import { METHODS, isTokenText, isValueText } from './head.js';
import type { HeadLimits } from './head.js';

export interface ClientPoolOptions {
  /** ms an idle connection is kept (the server's `Keep-Alive: timeout=` can only shorten it) */
  readonly keepAliveTimeout: number;
  readonly connectTimeout: number;
  /** most connections at once; undefined = unlimited */
  readonly connections?: number | undefined;
  /** source address of every connection (the inbound passthrough source); undefined: the kernel's */
  readonly localAddress?: string | undefined;
  /** opens each connection's transport instead of a TCP connect (the mesh's tunnel) */
  readonly connect?: Connector | undefined;
  /** response head and trailer limits; 16 KiB and 256 fields, as undici's */
  readonly limits?: HeadLimits | undefined;
}

const DEFAULT_LIMITS: HeadLimits = Object.freeze({ maxHeadBytes: 16 * 1024, maxFields: 256 });

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const BAD_TARGET = /[\x00-\x20\x7f]/;
const DIGITS = /^\d{1,15}$/;

class PoolClosedError extends Error {
  constructor(readonly code: 'UND_ERR_CLOSED' | 'UND_ERR_DESTROYED') {
    super(code === 'UND_ERR_CLOSED' ? 'the pool is closed' : 'the pool was destroyed');
    this.name = 'PoolClosedError';
  }
}

/** `name: value` is one of the fields the proxy formatted itself (CheckedHead.own) */
function isOwn(own: readonly string[], name: string, value: string): boolean {
  for (let j = 0; j < own.length; j += 2) if (own[j] === name && own[j + 1] === value) return true;
  return false;
}

function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

/** RFC 9110 §9.2.2 idempotent methods: the only ones the stale-connection retry may resend. */
function idempotent(method: string): boolean {
  return (
    method === 'GET' ||
    method === 'HEAD' ||
    method === 'OPTIONS' ||
    method === 'PUT' ||
    method === 'DELETE' ||
    method === 'TRACE'
  );
}

/** The methods the HTTP/1 parser knows (all tokens): one lookup instead of the TOKEN scan. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);

const NONE: readonly string[] = [];
const NONE_LINES: readonly number[] = [];

export class ClientPool implements ConnectionOwner, UpstreamPool, PoolStats {
  readonly host: string;
  readonly port: number;
  readonly target: string;
  readonly keepAliveTimeout: number;
  readonly connectTimeout: number;
  readonly localAddress: string | undefined;
  readonly connector: Connector | undefined;
  readonly limits: HeadLimits;
  private readonly limit: number;
  /** `host` for requests without one (port 80 left out, as undici does) */
  private readonly hostLine: string;
  private readonly idle: ClientConnection[] = [];
  private readonly queue: ClientRequest[] = [];
  private readonly conns = new Set<ClientConnection>();
  private closeWaiters: (() => void)[] = [];
  connectedCount = 0;
  /** requests dispatched and not yet on a connection (queued or waiting for theirs) */
  pendingCount = 0;
  runningCount = 0;
  closing = false;
  private destroyed = false;

  constructor(origin: string, o: ClientPoolOptions) {
    const i = origin.lastIndexOf(':');
    const host = origin.slice(0, i);
    this.host = host.startsWith('[') ? host.slice(1, -1) : host;
    this.port = Number(origin.slice(i + 1));
    this.target = origin;
    this.hostLine = `host: ${this.port === 80 ? host : origin}\r\n`;
    this.keepAliveTimeout = o.keepAliveTimeout;
    this.connectTimeout = o.connectTimeout;
    this.limit = o.connections ?? Infinity;
    this.localAddress = o.localAddress;
    this.connector = o.connect;
    this.limits = o.limits ?? DEFAULT_LIMITS;
  }

  // PoolStats, read in place (`stats` is the pool itself: nothing is built per read).
  get stats(): PoolStats {
    return this;
  }
  get connected(): number {
    return this.connectedCount;
  }
  get free(): number {
    return this.idle.length;
  }
  get pending(): number {
    return this.pendingCount;
  }
  get queued(): number {
    return this.queue.length;
  }
  get running(): number {
    return this.runningCount;
  }
  get size(): number {
    return this.pendingCount + this.runningCount;
  }

  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    if (this.closing) {
      handler.onError?.(new PoolClosedError(this.destroyed ? 'UND_ERR_DESTROYED' : 'UND_ERR_CLOSED'));
      return false;
    }
    let r: ClientRequest;
    try {
      r = this.prepare(opts, handler);
    } catch (err) {
      handler.onError?.(err as Error);
      return false;
    }
    this.pendingCount++;
    let c = this.idle.pop();
    if (c !== undefined) {
      // Past its idle time the server may be closing it right now: take a younger one. The
      // wheel's clock (at most a tick old) saves a clock read per request; the idle time keeps
      // a 2 s margin below what the server announced.
      const now = clientWheel.now;
      while (c !== undefined && !c.fresh(now)) {
        c.destroy();
        c = this.idle.pop();
      }
    }
    if (c !== undefined) this.run(c, r);
    else if (this.conns.size < this.limit) this.connectFor(r);
    else this.queue.push(r);
    return true;
  }

  /** The request as it goes out, or an EncodeError before anything is sent. */
  private prepare(opts: DispatchOptions, handler: DispatchHandler): ClientRequest {
    const method = opts.method;
    const path = opts.path;
    if (
      typeof method !== 'string' ||
      method === 'CONNECT' ||
      (!KNOWN_METHODS.has(method) && !isTokenText(method))
    )
      throw new EncodeError('request method');
    // What the HTTP/1 parser checked needs no second look (dispatch.ts, CheckedHead).
    const checked = opts.checked;
    if (typeof path !== 'string' || path === '' || (checked?.path !== path && BAD_TARGET.test(path)))
      throw new EncodeError('request target');
    const fields = checked === undefined ? NONE : checked.fields;
    // A checked entry goes out as its line came in, adjacent lines as one slice of the text.
    const lines = checked === undefined ? NONE_LINES : checked.lines;
    const text = checked === undefined ? '' : checked.text;
    const own = checked === undefined ? NONE : checked.own;
    let from = -1;
    let to = -1;
    const upgrade = opts.upgrade ?? null;
    const body = opts.body ?? null;
    let buf: Buffer | null = null;
    let stream: RequestBody | null = null;
    if (typeof body === 'string') buf = Buffer.from(body);
    else if (Buffer.isBuffer(body)) buf = body;
    else if (body !== null) stream = body;
    let head = `${method} ${path} HTTP/1.1\r\n`;
    let hasHost = false;
    let hasLength = false;
    const list = opts.headers ?? null;
    if (list !== null) {
      for (let i = 0; i < list.length; i += 2) {
        const name = list[i] as string;
        const value = list[i + 1] as string;
        const asCame = name === fields[i] && value === fields[i + 1];
        const checkedField = asCame || (own.length !== 0 && isOwn(own, name, value));
        if (!checkedField) {
          // A layer's field: a name that is not a token, or a control character, CR or LF in
          // the value (which would end the line and start a field of the client's making).
          if (typeof name !== 'string' || typeof value !== 'string' || !isTokenText(name))
            throw new EncodeError('request field name');
          if (!isValueText(value)) throw new EncodeError('request fields');
        }
        switch (name.length) {
          case 4:
            if (name.toLowerCase() === 'host') hasHost = true;
            break;
          case 14:
            if (name.toLowerCase() === 'content-length') {
              // One, digits only: two lengths (or a list) would frame the body two ways.
              if (hasLength || !DIGITS.test(value)) throw new EncodeError('request Content-Length');
              hasLength = true;
            }
            break;
          case 7:
          case 10:
          case 17: {
            // The framing and the connection are this client's own. (A checked field passed the
            // stage's hop-by-hop filter, which drops all four: no lower-casing for it.)
            if (checkedField) break;
            const l = name.toLowerCase();
            if (l === 'upgrade' || l === 'connection' || l === 'keep-alive' || l === 'transfer-encoding')
              continue;
            break;
          }
          default:
        }
        if (asCame && i < lines.length) {
          const start = lines[i] as number;
          if (start !== to) {
            if (from !== -1) head += text.slice(from, to);
            from = start;
          }
          to = lines[i + 1] as number;
        } else {
          if (from !== -1) {
            head += text.slice(from, to);
            from = to = -1;
          }
          head += `${name}: ${value}\r\n`;
        }
      }
      if (from !== -1) head += text.slice(from, to);
    }
    if (buf !== null && hasLength)
      throw new EncodeError('request framing (a Content-Length with a whole body)');
    if (!hasHost) head += this.hostLine;
    if (upgrade !== null) {
      if (!isValueText(upgrade)) throw new EncodeError('upgrade protocol');
      head += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`;
    } else if (method === 'HEAD') {
      // As undici: a server that wrongly sends a body after HEAD would poison the next response.
      head += 'connection: close\r\n';
    }
    let chunked = false;
    if (stream !== null && !hasLength) {
      head += 'transfer-encoding: chunked\r\n';
      chunked = true;
    } else if (buf !== null) {
      head += `content-length: ${buf.length}\r\n`;
    } else if (stream === null && !hasLength && expectsPayload(method)) {
      head += 'content-length: 0\r\n';
    }
    head += '\r\n';
    const b = buf ?? stream;
    return new ClientRequest(
      this,
      handler,
      head,
      b as ClientRequest['body'],
      chunked,
      method,
      upgrade !== null,
      b === null && upgrade === null && idempotent(method),
    );
  }

  /** @internal starts pending `r` on `c` */
  run(c: ClientConnection, r: ClientRequest): void {
    this.pendingCount--;
    if (!c.start(r)) this.release(c); // aborted from onConnect before anything was written
  }

  /** @internal opens a connection for pending `r` */
  connectFor(r: ClientRequest): void {
    this.conns.add(new ClientConnection(this, r));
  }

  /** @internal an idle connection: to the next queued request, or kept */
  release(c: ClientConnection): void {
    let r = this.queue.shift();
    while (r !== undefined && r.done) r = this.queue.shift();
    if (r !== undefined) {
      this.run(c, r);
      return;
    }
    if (this.closing) {
      c.destroy();
      return;
    }
    c.parked();
    this.idle.push(c);
  }

  /** @internal a queued request was aborted */
  unqueue(r: ClientRequest): void {
    const i = this.queue.indexOf(r);
    if (i !== -1) {
      this.queue.splice(i, 1);
      this.pendingCount--;
    }
  }

  /** @internal a connection closed (or left with an upgrade) */
  forget(c: ClientConnection): void {
    this.conns.delete(c);
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
    // A slot opened: the oldest waiting request gets a connection of its own.
    if (this.queue.length > 0 && this.conns.size < this.limit && !this.closing) {
      let r = this.queue.shift();
      while (r !== undefined && r.done) r = this.queue.shift();
      if (r !== undefined) this.connectFor(r);
    }
    if (this.conns.size === 0) {
      const w = this.closeWaiters;
      this.closeWaiters = [];
      for (const f of w) f();
    }
  }

  /** No new requests; idle connections close now, busy ones after their exchange. */
  close(): Promise<void> {
    this.closing = true;
    for (const c of [...this.idle]) c.destroy();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  /** Fails every request and closes every connection. */
  destroy(): Promise<void> {
    this.closing = true;
    this.destroyed = true;
    const err = new PoolClosedError('UND_ERR_DESTROYED');
    const queued = this.queue.splice(0);
    this.pendingCount -= queued.filter((r) => !r.done).length;
    for (const r of queued) r.fail(err);
    const wait =
      this.conns.size === 0 ? Promise.resolve() : new Promise<void>((r) => this.closeWaiters.push(r));
    for (const c of [...this.conns]) {
      c.detach()?.fail(err);
      c.destroy();
    }
    return wait;
  }
}
