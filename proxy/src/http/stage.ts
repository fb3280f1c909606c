/**
 * What every HTTP server stage shares (the protocol seam's stage side, docs/architecture.md):
 * the `HttpStage` interface the engine composes, its options, and the request checks and
 * helpers both HTTP/1.1 stages use (the codec's, h1server.ts, and node:http's, server.ts). An
 * HTTP/2 stage implements `HttpStage` with the same options.
 */
import type { Socket } from 'node:net';
import { BadRequestError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Direction, DirectionMetrics } from '../metrics/proxy.js';
import type { Handler } from './layer.js';
import { needsNormalizing, normalizePath } from './path.js';
import { pathProblem, queryStart } from './validate.js';

export interface HttpStageOptions {
  readonly direction: Direction;
  readonly handler: Handler;
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  /** a request head not complete within this is answered 408 (REMORA_REQUEST_HEAD_TIMEOUT_MS) */
  readonly requestHeadTimeoutMs?: number;
  readonly draining: () => boolean;
}

export interface HttpStage {
  /** Hands a detected HTTP/1 connection (bytes unshifted, paused) to the parser. */
  serve(socket: Socket): void;
  /** Closes keep-alive connections that have no request in flight (drain). */
  closeIdle(): void;
  close(): void;
}

/** How long a connection whose upgrade was answered without a 101 waits for the client's FIN. */
const CLOSE_GRACE_MS = 5_000;

/**
 * After an answer other than 101 to an Upgrade request: read and drop what the client still
 * sends (its first frames; no parser reads this connection any more), close our side, and give
 * the client a while to close its own. Destroying with unread bytes would reset the connection,
 * and a reset can take the answer with it before the client read it.
 */
export function closeAfterAnswer(socket: Socket): void {
  socket.resume();
  socket.end();
  // A fixed bound, not an idle timeout: a client that keeps sending must not keep it open.
  const t = setTimeout(destroySocket, CLOSE_GRACE_MS, socket);
  socket.once('close', () => clearTimeout(t));
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** Any `h2c` token in an Upgrade list (`Upgrade: h2c`, `websocket, H2C`, ...). */
export function isH2c(protocols: string): boolean {
  const v = protocols.toLowerCase();
  if (!v.includes('h2c')) return false;
  for (const t of v.split(',')) if (t.trim() === 'h2c') return true;
  return false;
}

/** `http(s)://` and an RFC 3986 authority (userinfo, host, port), up to the path or the query. */
const ABSOLUTE = /^https?:\/\/[A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]*(?=[/?]|$)/i;

/**
 * The request target as the layers match it and the app receives it (docs/policy.md, "What is
 * normalized"): origin-form, its path checked against RFC 3986 and normalized (unreserved
 * characters decoded, `//` merged, dot segments resolved), the query as sent. absolute-form
 * (`GET http://host/p?q`, sent to proxies) becomes origin-form `/p?q`, its raw path checked the
 * same way (never through WHATWG URL parsing, which would turn `\` into `/` unseen).
 */
export function requestPath(target: string): string | BadRequestError {
  let t = target;
  if (t.charCodeAt(0) !== 0x2f) {
    const m = ABSOLUTE.exec(t);
    if (m === null)
      return new BadRequestError(`unsupported request target ${JSON.stringify(t.slice(0, 64))}`);
    t = t.slice(m[0].length);
    if (t.charCodeAt(0) !== 0x2f) t = `/${t}`;
  }
  const q = queryStart(t);
  const problem = pathProblem(t, 0, q);
  if (problem !== undefined) return new BadRequestError(problem);
  return needsNormalizing(t, q) ? `${normalizePath(t, q)}${t.slice(q)}` : t;
}
