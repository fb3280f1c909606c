/**
 * The HTTP/1 server stage of a data listener: Node's HTTP parser (an http.Server that never
 * listens; detected sockets are fed to it with `emit('connection')`), request limits, the
 * per-request context, and the answers for malformed input. What happens to a request is the
 * listener's composed Handler (see layer.ts).
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BadRequestError, HeadersTooLargeError, TooManyHeadersError } from '../errors.js';
import type { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Direction, DirectionMetrics } from '../metrics/proxy.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import { connectionOf } from '../tcp/connection.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { CountingIncomingMessage } from './counting.js';
import { filterRequestHeaders } from './headers.js';
import type { RequestHeadInfo } from './headers.js';
import { RequestContext } from './layer.js';
import type { Handler, LocalAnswerDeps } from './layer.js';
import type { Pools } from './pools.js';
import { tunnel } from './upgrade.js';

export interface HttpStageOptions {
  readonly direction: Direction;
  readonly handler: Handler;
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  readonly pools: Pools;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly draining: () => boolean;
  /**
   * Gate for HTTP Upgrade requests, which Node hands past every layer (policy's authorization):
   * false means the gate answered and closed the socket itself. Absent: every upgrade passes.
   */
  readonly admitUpgrade?: (req: IncomingMessage, socket: Socket, conn: ConnectionInfo) => boolean;
}

export interface HttpStage {
  /** Hands a detected HTTP/1 connection (bytes unshifted, paused) to the parser. */
  serve(socket: Socket): void;
  /** Closes keep-alive connections that have no request in flight (drain). */
  closeIdle(): void;
  close(): void;
}

// Reused across requests: filterRequestHeaders fills it synchronously and we read it at once.
const headInfo: RequestHeadInfo = { hasBody: false, upgrade: undefined };

export function createHttpStage(o: HttpStageOptions): HttpStage {
  const server = http.createServer({
    maxHeaderSize: o.maxHeaderBytes,
    // Forward what the client sent; a missing Host is the upstream's call, not ours.
    requireHostHeader: false,
    noDelay: true,
    insecureHTTPParser: false,
    // Counts request body bytes for the access log (counting.ts).
    IncomingMessage: CountingIncomingMessage,
  });
  // One more than the limit, so that "too many" is visible instead of silently truncated.
  server.maxHeadersCount = o.maxHeaders + 1;
  // Lent to every request of this listener, for answers a layer gives itself (http/local.ts).
  const local: LocalAnswerDeps = { metrics: o.metrics, draining: o.draining };
  server.keepAliveTimeout = 5_000;

  const answer = (res: ServerResponse, err: ProxyError, conn: ConnectionInfo) => {
    const r = rescue(err, '');
    res.shouldKeepAlive = false;
    res.writeHead(r.status, [ERROR_HEADER, r.code, 'content-type', 'text/plain', 'connection', 'close']);
    res.end(`${err.message}\n`);
    (conn.peer ?? o.metrics).requests(r.status).inc();
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const conn = connectionOf(req.socket);
    if (conn === undefined) {
      res.destroy();
      return;
    }
    const raw = req.rawHeaders;
    if (raw.length > o.maxHeaders * 2) {
      answer(res, new TooManyHeadersError(o.maxHeaders), conn);
      return;
    }
    let path = req.url as string;
    if (path.charCodeAt(0) !== 0x2f) {
      const p = originForm(path);
      if (p === undefined) {
        answer(
          res,
          new BadRequestError(`unsupported request target ${JSON.stringify(path.slice(0, 64))}`),
          conn,
        );
        return;
      }
      path = p;
    }
    const headers: string[] = [];
    headInfo.hasBody = false;
    headInfo.upgrade = undefined;
    filterRequestHeaders(raw, headers, headInfo);
    if (o.draining()) res.shouldKeepAlive = false;
    const ctx = new RequestContext(
      o.direction,
      req,
      res,
      req.method as string,
      path,
      performance.now(),
      conn.peerAddress,
      conn.peerPort,
      conn.destination,
      conn.destinationKey,
      headers,
      headInfo.hasBody,
      local,
    );
    ctx.peerMetrics = conn.peer;
    if (ctx.hasBody) {
      // Let the parser finish the bytes it already has first: a malformed body in the same
      // packet as the head (bad chunk size) is then refused before anything goes upstream.
      process.nextTick(startWithBody, o.handler, ctx);
    } else {
      o.handler(ctx);
    }
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const conn = connectionOf(req.socket);
    if (conn === undefined) {
      socket.destroy();
      return;
    }
    if (o.admitUpgrade !== undefined && !o.admitUpgrade(req, socket as Socket, conn)) return;
    tunnel(req, socket as Socket, head, conn, o);
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const code = err.code ?? '';
    const httpMessage = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (code === 'ECONNRESET' || !socket.writable || (httpMessage != null && httpMessage.headersSent)) {
      socket.destroy();
      return;
    }
    // Node 24's parser enforces maxHeadersCount itself and reports it as a header overflow,
    // as it does an oversized head; the head's size tells the two apart.
    const parsed = (err as NodeJS.ErrnoException & { bytesParsed?: number }).bytesParsed ?? Infinity;
    const e =
      code === 'HPE_HEADER_OVERFLOW'
        ? parsed < o.maxHeaderBytes
          ? new TooManyHeadersError(o.maxHeaders)
          : new HeadersTooLargeError(o.maxHeaderBytes)
        : new BadRequestError(code === '' ? err.message : code);
    const r = rescue(e, '');
    (connectionOf(socket as Socket)?.peer ?? o.metrics).requests(r.status).inc();
    if (o.log.isLevelEnabled('info')) {
      o.log.info(
        { event: 'bad_request', direction: o.direction, code: r.code, parser: code, status: r.status },
        e.message,
      );
    }
    const body = `${e.message}\n`;
    socket.end(
      `HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status]}\r\nconnection: close\r\n${ERROR_HEADER}: ${r.code}\r\n` +
        `content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });

  // An http.Server only guards slow request heads (headersTimeout) once it is "listening";
  // ours never binds, so start that bookkeeping by hand.
  server.emit('listening');

  return {
    serve: (socket) => {
      server.emit('connection', socket);
      socket.resume();
    },
    closeIdle: () => server.closeIdleConnections(),
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

function startWithBody(handler: Handler, ctx: RequestContext): void {
  // A parse error in the meantime already answered 400 and destroyed the socket.
  if (ctx.req.socket.destroyed) return;
  handler(ctx);
}

/** absolute-form (`GET http://host/p?q HTTP/1.1`, sent to proxies) → origin-form `/p?q`. */
function originForm(target: string): string | undefined {
  if (!/^https?:\/\//i.test(target)) return undefined;
  try {
    const u = new URL(target);
    return `${u.pathname}${u.search}`;
  } catch {
    return undefined;
  }
}
