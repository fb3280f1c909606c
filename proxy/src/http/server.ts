/**
 * The HTTP/1 server stage of a data listener: Node's HTTP parser (an http.Server that never
 * listens; detected sockets are fed to it with `emit('connection')`), request limits, the
 * per-request context, and the answers for malformed input. What happens to a request is the
 * listener's composed Handler (see layer.ts).
 *
 * Upgrade requests (WebSocket, ...) take the same path: Node hands them to its `upgrade` event
 * with the raw socket, so the stage binds a response to that socket and runs the request through
 * the same handler (every layer, then the forwarder tunnels it: upgrade.ts). `Upgrade: h2c` is
 * never forwarded (docs/proxy.md): after a 101 the connection would be raw HTTP/2 that no layer
 * sees (h2c smuggling), so the upgrade is stripped and the request served as plain HTTP/1.1.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DEFAULTS } from '../config/config.js';
import {
  BadRequestError,
  HeadersTooLargeError,
  RequestHeadTimeoutError,
  TooManyHeadersError,
} from '../errors.js';
import type { ProxyError } from '../errors.js';
import { rescue } from '../rescue.js';
import { connectionOf } from '../tcp/connection.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { CountingIncomingMessage } from './counting.js';
import type { DownstreamResponse, RequestBody, ResponseOwner } from './exchange.js';
import { filterRequestHeaders } from './headers.js';
import type { RequestHeadInfo } from './headers.js';
import { RequestContext } from './layer.js';
import type { Handler, LocalAnswerDeps } from './layer.js';
import { closingAnswer, writeErrorResponse } from './local.js';
import { framingProblem } from './validate.js';
import { closeAfterAnswer, isH2c, requestPath } from './stage.js';
import type { HttpStage, HttpStageOptions } from './stage.js';

// What every server stage shares lives in stage.ts; named here too for older imports.
export type { HttpStage, HttpStageOptions } from './stage.js';
export { requestPath } from './stage.js';

// Reused across requests: filterRequestHeaders fills it synchronously and we read it at once.
const headInfo: RequestHeadInfo = { hasBody: false, upgrade: undefined };

export function createHttpStage(o: HttpStageOptions): HttpStage {
  const headTimeoutMs = o.requestHeadTimeoutMs ?? DEFAULTS.requestHeadTimeoutMs;
  const server = http.createServer({
    maxHeaderSize: o.maxHeaderBytes,
    // Forward what the client sent; a missing Host is the upstream's call, not ours.
    requireHostHeader: false,
    noDelay: true,
    insecureHTTPParser: false,
    // A head trickled a byte at a time must not hold the connection for Node's 60 s (+ its 30 s
    // check period): it gets 408 once the head timeout passes, checked this often.
    headersTimeout: headTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headTimeoutMs / 10))),
    // Counts request body bytes for the access log (counting.ts).
    IncomingMessage: CountingIncomingMessage,
  });
  // One more than the limit, so that "too many" is visible instead of silently truncated.
  server.maxHeadersCount = o.maxHeaders + 1;
  // Lent to every request of this listener, for answers a layer gives itself (http/local.ts).
  const local: LocalAnswerDeps = { metrics: o.metrics, draining: o.draining };
  server.keepAliveTimeout = 5_000;

  /** A request refused before any layer saw it: the one error writer, then the connection closes. */
  const refuse = (req: IncomingMessage, response: NodeResponse, err: ProxyError, conn: ConnectionInfo) =>
    answer(
      new RequestContext(
        o.direction,
        response,
        null,
        req.method as string,
        req.url as string,
        req.rawHeaders,
        req.httpVersion,
        performance.now(),
        conn,
        [],
        false,
      ),
      err,
      conn,
    );
  const answer = (ctx: RequestContext, err: ProxyError, conn: ConnectionInfo) => {
    const r = rescue(err, '');
    (ctx.response as NodeResponse).res.shouldKeepAlive = false;
    writeErrorResponse(ctx, r, true);
    (conn.peer ?? o.metrics).requests(r.status).inc();
  };

  /** `head`: set for an Upgrade request (the bytes after its head), which `res` is bound to. */
  const onRequest = (req: IncomingMessage, res: ServerResponse, head?: Buffer): void => {
    const conn = connectionOf(req.socket);
    if (conn === undefined) {
      res.destroy();
      return;
    }
    const raw = req.rawHeaders;
    const response = new NodeResponse(res, req.socket);
    if (raw.length > o.maxHeaders * 2) {
      refuse(req, response, new TooManyHeadersError(o.maxHeaders), conn);
      return;
    }
    const path = requestPath(req.url as string);
    if (typeof path !== 'string') {
      refuse(req, response, path, conn);
      return;
    }
    const framing = framingProblem(req.method as string, raw);
    if (framing !== undefined) {
      refuse(req, response, new BadRequestError(framing), conn);
      return;
    }
    const headers: string[] = [];
    headInfo.hasBody = false;
    headInfo.upgrade = undefined;
    filterRequestHeaders(raw, headers, headInfo);
    if (o.draining()) res.shouldKeepAlive = false;
    const ctx = new RequestContext(
      o.direction,
      response,
      // CountingIncomingMessage is the node stage's RequestBody (the Readable subset, counted).
      headInfo.hasBody ? (req as unknown as RequestBody) : null,
      req.method as string,
      path,
      raw,
      req.httpVersion,
      performance.now(),
      conn,
      headers,
      headInfo.hasBody,
      local,
    );
    if (head !== undefined) {
      const protocols = headInfo.upgrade;
      if (ctx.hasBody) {
        // The parser stopped at the head: a body would reach the upstream unframed.
        answer(ctx, new BadRequestError('an Upgrade request cannot carry a body'), conn);
        return;
      }
      if (protocols !== undefined && !isH2c(protocols)) ctx.upgrade = { socket: req.socket, head, protocols };
      // h2c: served as the plain request it also is (RFC 9110 §7.8 lets a server ignore Upgrade).
      o.handler(ctx);
      return;
    }
    if (ctx.hasBody) {
      // Let the parser finish the bytes it already has first: a malformed body in the same
      // packet as the head (bad chunk size) is then refused before anything goes upstream.
      process.nextTick(startWithBody, o.handler, ctx);
    } else {
      o.handler(ctx);
    }
  };
  server.on('request', onRequest);

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // The parser let go of this connection: answers before a 101 are written through a response
    // bound to it, and the connection closes after them (no further request is parsed on it).
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.once('finish', () => closeAfterAnswer(socket as Socket));
    onRequest(req, res, head);
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
      code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new RequestHeadTimeoutError(headTimeoutMs)
        : code === 'HPE_HEADER_OVERFLOW'
          ? parsed < o.maxHeaderBytes
            ? new TooManyHeadersError(o.maxHeaders)
            : new HeadersTooLargeError(o.maxHeaderBytes)
          : new BadRequestError(code === '' ? err.message : code);
    refuseRaw(socket, e, o, code);
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
  if ((ctx.response as NodeResponse).socket.destroyed) return;
  handler(ctx);
}

const kResponse = Symbol('remora.response');
type TaggedResponse = ServerResponse & { [kResponse]?: NodeResponse };

/**
 * The node:http stage's DownstreamResponse (exchange.ts): a ServerResponse and the socket it
 * writes to. Node frames the body (Content-Length when given, else chunked) and keep-alive.
 */
export class NodeResponse implements DownstreamResponse {
  owner: ResponseOwner | undefined = undefined;
  private drainHooked = false;

  constructor(
    readonly res: ServerResponse,
    readonly socket: Socket,
  ) {}

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get finished(): boolean {
    return this.res.writableFinished;
  }

  writeHead(status: number, reason: string, headers: readonly string[]): void {
    if (reason === '') this.res.writeHead(status, headers as string[]);
    else this.res.writeHead(status, reason, headers as string[]);
  }

  write(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    // The listener only now: the common small response costs none.
    if (!this.drainHooked) {
      this.drainHooked = true;
      (this.res as TaggedResponse)[kResponse] = this;
      this.res.on('drain', onResDrain);
    }
    return false;
  }

  end(last?: Buffer | string, trailers?: readonly string[] | null): void {
    const res = this.res;
    if (trailers != null && trailers.length > 0 && res.chunkedEncoding) {
      const t: [string, string][] = [];
      for (let i = 0; i + 1 < trailers.length; i += 2)
        t.push([trailers[i] as string, trailers[i + 1] as string]);
      res.addTrailers(t);
    }
    if (last === undefined) res.end();
    else res.end(last);
  }

  destroy(): void {
    this.res.destroy();
  }

  attach(owner: ResponseOwner): void {
    this.owner = owner;
    (this.res as TaggedResponse)[kResponse] = this;
    this.res.once('close', onResClose);
  }

  bytesMoved(): number {
    const s = this.socket;
    return s.bytesRead + s.bytesWritten;
  }
}

function onResDrain(this: TaggedResponse): void {
  this[kResponse]?.owner?.responseDrained();
}

function onResClose(this: TaggedResponse): void {
  this[kResponse]?.owner?.clientClosed();
}

/** Answers a malformed head on the raw socket (no response object exists) and closes it. */
function refuseRaw(socket: Duplex, e: ProxyError, o: HttpStageOptions, parser = ''): void {
  const r = rescue(e, '');
  (connectionOf(socket as Socket)?.peer ?? o.metrics).requests(r.status).inc();
  if (o.log.isLevelEnabled('info')) {
    o.log.info(
      { event: 'bad_request', direction: o.direction, code: r.code, parser, status: r.status },
      e.message,
    );
  }
  socket.end(closingAnswer(r));
}
