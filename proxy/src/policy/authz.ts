/**
 * Authorization on the inbound side (docs/policy.md): an HTTP Layer that asks the policy in force
 * about each request, and the same question for an opaque TCP connection.
 *
 * A denied request is answered here through http/local.ts (the proxy's one writer for its own
 * answers): 403 `RMR_POLICY_DENIED` with the reason in the body; it never reaches the app. The
 * connection stays open: it is a clean answer, and if a body follows, Node's server reads and
 * discards it after our response so the next request on the connection parses correctly
 * (closing instead would race the client's upload and could reset the 403 away before the
 * client read it). It is counted in `remora_requests_total` like any answer, plus
 * `remora_policy_denials_total{direction,reason}`, and logged as a security event.
 */
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { PolicyDeniedError } from '../errors.js';
import type { Handler, Layer } from '../http/layer.js';
import type { Logger } from '../log.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import type { CounterChild } from '../metrics/registry.js';
import { answerLocally, recordRequest, writeErrorResponse } from '../http/local.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { tunnelInfo } from '../tunnel/server.js';
import type { PolicyMetrics } from './metrics.js';
import type { AuthzDecision, PolicySource, RequestInfo, SourceInfo } from './types.js';

export interface AuthzLayerOptions {
  readonly policy: PolicySource;
  readonly metrics: PolicyMetrics;
  readonly log: Logger;
  /**
   * Only for a context without the listener's deps (`ctx.local`, set by http/server.ts): the
   * request series a 403 is counted in, and the drain flag. Listener contexts use their own.
   */
  readonly requests?: DirectionMetrics;
  readonly draining?: () => boolean;
}

// Scratch source handed to the compiled policy: it reads it synchronously and keeps nothing.
// The request facts need no copy: a RequestContext is a RequestInfo (method, path, rawHeaders).
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
const src: Mutable<SourceInfo> = { identity: undefined, address: '' };

/** Bounded length of a path in a log line (the path is the caller's, not ours). */
const LOG_PATH_MAX = 256;

export function authzLayer(o: AuthzLayerOptions): Layer {
  const { policy, metrics, log } = o;
  return (next: Handler): Handler =>
    (ctx) => {
      const inbound = policy.current?.inbound(ctx.destination.port);
      if (inbound === undefined) return next(ctx);
      const identity = tunnelInfo(ctx.req.socket)?.peerIdentity;
      src.identity = identity;
      src.address = ctx.peerAddress;
      const d = inbound.authorizeRequest(src, ctx);
      if (d === undefined || d.action === 'allow') return next(ctx);
      const where = requestFields(
        ctx.peerAddress,
        ctx.peerPort,
        identity,
        ctx.destination.port,
        ctx.method,
        ctx.path,
      );
      if (!report(metrics, log, d, where, 'request')) return next(ctx);
      const err = new PolicyDeniedError(denialText(d));
      if (ctx.local !== undefined) {
        // The listener's one writer and recorder: counted in remora_requests_total, finished once.
        answerLocally(ctx, err);
        return;
      }
      // A context made without a listener's deps (a test's own stack): the same answer by hand.
      writeErrorResponse(ctx, rescue(err, ctx.destinationKey), o.draining?.() === true);
      recordRequest(ctx, o.requests);
    };
}

/** The text after "refused by policy: " (also in the log line). */
export function denialText(d: AuthzDecision): string {
  return d.needsMtls ? `${d.reason} (requires mTLS: the allowing rule names a source identity)` : d.reason;
}

function requestFields(
  address: string,
  peerPort: number,
  identity: string | undefined,
  port: number,
  method: string,
  path: string,
): Record<string, unknown> {
  return {
    peer: `${address}:${peerPort}`,
    identity: identity ?? null,
    port,
    method,
    path: path.length > LOG_PATH_MAX ? `${path.slice(0, LOG_PATH_MAX)}...` : path,
  };
}

// Decisions are made once per compiled policy, so their counter children can be kept with them:
// a `default: audit` policy (a migration mode) reports every request, and this spares the label
// lookup each time. Weak, so a replaced policy's decisions leave with it.
const children = new WeakMap<PolicyMetrics, WeakMap<AuthzDecision, CounterChild>>();

function counter(metrics: PolicyMetrics, d: AuthzDecision): CounterChild {
  let byDecision = children.get(metrics);
  if (byDecision === undefined) children.set(metrics, (byDecision = new WeakMap()));
  let c = byDecision.get(d);
  if (c === undefined) {
    c = (d.action === 'deny' ? metrics.denials : metrics.audits).child('inbound', d.reason);
    byDecision.set(d, c);
  }
  return c;
}

/**
 * Counts and logs an audit or a denial (security events: warn, stable `event`). Only called for
 * those two, never on the allow path. Returns true when the decision denies.
 */
function report(
  metrics: PolicyMetrics,
  log: Logger,
  d: AuthzDecision,
  where: Record<string, unknown>,
  what: 'request' | 'connection',
): boolean {
  counter(metrics, d).inc();
  const fields = { direction: 'inbound', reason: d.reason, needsMtls: d.needsMtls, ...where };
  if (d.action !== 'deny') {
    log.warn({ event: 'policy_audit', ...fields }, `policy audit: ${d.reason}`);
    return false;
  }
  log.warn({ event: 'policy_denied', ...fields }, `${what} refused by policy: ${denialText(d)}`);
  return true;
}

/**
 * Opaque TCP on an inbound port: false means close the connection (counted and logged here).
 * `src.identity` is the tunnel's verified peer identity, undefined for plaintext.
 */
export function authorizeConnection(
  policy: PolicySource,
  port: number,
  source: SourceInfo,
  metrics: PolicyMetrics,
  log: Logger,
): boolean {
  const d = policy.current?.inbound(port)?.authorizeConnection(source);
  if (d === undefined || d.action === 'allow') return true;
  const where = { peer: source.address, identity: source.identity ?? null, port, protocol: 'opaque' };
  return !report(metrics, log, d, where, 'connection');
}

/**
 * An HTTP Upgrade request (WebSocket, ...): Node's server hands it to its `upgrade` event, past
 * every layer, so the HTTP stage must ask here before tunnelling it. true: go on (allowed or
 * audited, the audit reported). false: refused, counted, logged, and the 403 was written raw on
 * the socket, which is then closed (after a refused upgrade there is no HTTP connection to keep).
 */
export function authorizeUpgrade(
  o: AuthzLayerOptions,
  req: IncomingMessage,
  socket: Socket,
  conn: ConnectionInfo,
): boolean {
  const inbound = o.policy.current?.inbound(conn.destination.port);
  if (inbound === undefined) return true;
  const identity = tunnelInfo(req.socket)?.peerIdentity;
  const info: RequestInfo = {
    method: req.method ?? '',
    path: originPath(req.url ?? '/'),
    rawHeaders: req.rawHeaders,
  };
  const d = inbound.authorizeRequest({ identity, address: conn.peerAddress }, info);
  if (d === undefined || d.action === 'allow') return true;
  const where = requestFields(
    conn.peerAddress,
    conn.peerPort,
    identity,
    conn.destination.port,
    info.method,
    info.path,
  );
  if (!report(o.metrics, o.log, d, { ...where, upgrade: true }, 'request')) return true;
  const r = rescue(new PolicyDeniedError(denialText(d)), conn.destinationKey);
  o.requests?.requests(r.status).inc();
  const body = `${r.error.message}\n`;
  socket.end(
    `HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status]}\r\n${ERROR_HEADER}: ${r.code}\r\n` +
      `content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  return false;
}

/** absolute-form (`http://host/p?q`, sent to proxies) → `/p?q`; origin-form as it is. */
function originPath(target: string): string {
  if (target.charCodeAt(0) === 0x2f) return target;
  try {
    const u = new URL(target);
    return `${u.pathname}${u.search}`;
  } catch {
    // Not a path at all: match it as the root, so that a catch-all deny still applies.
    return '/';
  }
}
