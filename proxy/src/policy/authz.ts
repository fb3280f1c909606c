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
import type { Handler, Layer } from '../http/layer.js';
import type { Logger } from '../log.js';
import type { DirectionMetrics } from '../metrics/proxy.js';
import type { CounterChild } from '../metrics/registry.js';
import { answerLocally, recordRequest, writeErrorResponse } from '../http/local.js';
import { rescue } from '../rescue.js';
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
      const identity = ctx.peerIdentity;
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
