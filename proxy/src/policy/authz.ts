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
import { PolicyDeniedError } from '../errors.js';
import type { Handler, Layer, RequestContext } from '../http/layer.js';
import type { Logger } from '../log.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import { answerLocally, recordRequest, writeErrorResponse } from '../http/local.js';
import { rescue } from '../rescue.js';
import { tunnelInfo } from '../tunnel/server.js';
import type { PolicyMetrics } from './metrics.js';
import type { AuthzDecision, PolicySource, SourceInfo } from './types.js';

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
  const err = new PolicyDeniedError(denialText(d));
  o.metrics.denials.child('inbound', d.reason).inc();
  o.log.warn(event('policy_denied', d, ctx, identity), err.message);
  if (ctx.local !== undefined) {
    // The listener's one writer and recorder: counted in remora_requests_total, finished once.
    answerLocally(ctx, err);
    return;
  }
  // A context made without a listener's deps (a test's own stack): the same answer by hand.
  writeErrorResponse(ctx, rescue(err, ctx.destinationKey), o.draining?.() === true);
  recordRequest(ctx, o.requests);
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
