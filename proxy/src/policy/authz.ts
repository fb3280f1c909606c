/**
 * Authorization on the inbound side (docs/policy.md): an HTTP Layer that asks the policy in force
 * about each request, and the same question for an opaque TCP connection.
 *
 * A denied request is answered here, 403 `RMR_POLICY_DENIED` with the reason in the body, and
 * never reaches the app. The connection stays open: it is a clean answer, and if a body follows,
 * Node's server reads and discards it after our response so the next request on the connection
 * parses correctly (closing instead would race the client's upload and could reset the 403 away
 * before the client read it). It is counted in `remora_requests_total` like any answer, plus
 * `remora_policy_denials_total{direction,reason}`, and logged as a security event.
 */
import { performance } from 'node:perf_hooks';
import { PolicyDeniedError } from '../errors.js';
import type { Handler, Layer, RequestContext } from '../http/layer.js';
import type { Logger } from '../log.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { ERROR_HEADER, rescue } from '../rescue.js';
import { tunnelInfo } from '../tunnel/server.js';
import type { PolicyMetrics } from './metrics.js';
import type { AuthzDecision, PolicySource, RequestInfo, SourceInfo } from './types.js';

export interface AuthzLayerOptions {
  readonly policy: PolicySource;
  readonly metrics: PolicyMetrics;
  readonly log: Logger;
  /** the inbound direction's request series: a denied request is counted there (403) like any answer */
  readonly requests?: DirectionMetrics;
  /** true while draining: the 403 then carries `Connection: close` like every other answer */
  readonly draining?: () => boolean;
}

// Scratch facts handed to the compiled policy: it reads them synchronously and keeps nothing.
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
const src: Mutable<SourceInfo> = { identity: undefined, address: '' };
const req: Mutable<RequestInfo> = { method: '', path: '/', rawHeaders: [] };

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
      req.method = ctx.method;
      req.path = ctx.path;
      req.rawHeaders = ctx.req.rawHeaders;
      const d = inbound.authorizeRequest(src, req);
      if (d === undefined || d.action === 'allow') return next(ctx);
      if (d.action === 'audit') {
        metrics.audits.child('inbound', d.reason).inc();
        log.warn(event('policy_audit', d, ctx, identity), `policy audit: ${d.reason}`);
        return next(ctx);
      }
      deny(ctx, d, identity, o);
    };
}

function event(name: string, d: AuthzDecision, ctx: RequestContext, identity: string | undefined) {
  return {
    event: name,
    direction: 'inbound',
    reason: d.reason,
    needsMtls: d.needsMtls,
    peer: `${ctx.peerAddress}:${ctx.peerPort}`,
    identity: identity ?? null,
    port: ctx.destination.port,
    method: ctx.method,
    path: ctx.path.length > LOG_PATH_MAX ? `${ctx.path.slice(0, LOG_PATH_MAX)}...` : ctx.path,
  };
}

/** The text after "refused by policy: " (also in the log line). */
export function denialText(d: AuthzDecision): string {
  return d.needsMtls ? `${d.reason} (requires mTLS: the allowing rule names a source identity)` : d.reason;
}

function deny(
  ctx: RequestContext,
  d: AuthzDecision,
  identity: string | undefined,
  o: AuthzLayerOptions,
): void {
  const r = rescue(new PolicyDeniedError(denialText(d)), ctx.destinationKey);
  o.metrics.denials.child('inbound', d.reason).inc();
  o.log.warn(event('policy_denied', d, ctx, identity), r.error.message);
  const body = `${r.error.message}\n`;
  const headers = [
    ERROR_HEADER,
    r.code,
    'content-type',
    'text/plain',
    'content-length',
    String(Buffer.byteLength(body)),
  ];
  if (o.draining?.() === true) headers.push('connection', 'close');
  ctx.status = r.status;
  ctx.errorCode = r.code;
  ctx.res.writeHead(r.status, headers);
  ctx.res.end(body);
  const now = performance.now();
  if (o.requests !== undefined) {
    o.requests.requests(r.status).inc();
    o.requests.duration.observe((now - ctx.startTime) / 1000);
  }
  ctx.finish(now);
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
  const fields = {
    direction: 'inbound',
    reason: d.reason,
    needsMtls: d.needsMtls,
    peer: source.address,
    identity: source.identity ?? null,
    port,
    protocol: 'opaque',
  };
  if (d.action === 'audit') {
    metrics.audits.child('inbound', d.reason).inc();
    log.warn({ event: 'policy_audit', ...fields }, `policy audit: ${d.reason}`);
    return true;
  }
  metrics.denials.child('inbound', d.reason).inc();
  log.warn({ event: 'policy_denied', ...fields }, `connection refused by policy: ${denialText(d)}`);
  return false;
}
