/**
 * The telemetry Layer: a span per request (SERVER inbound, CLIENT outbound) whose context is
 * written into the upstream request, and an access-log line when the request is over. Built only
 * when tracing or the access log is on: `telemetryLayer` returns undefined otherwise, so a proxy
 * with both off runs no telemetry code at all on its hot path.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isGrpcContentType, parseGrpcPath } from '../grpc/protocol.js';
import { headerValue } from '../http/exchange.js';
import { grpcStatusOf } from '../http2/server.js';
import type { CheckedHead } from '../http/dispatch.js';
import type { Handler, Layer, RequestContext } from '../http/layer.js';
import type { Direction } from '../metrics/proxy.js';
import type { AccessLog } from './accesslog.js';
import type { GrpcMethod, HttpRequestInfo, PeerWorkload, RequestTrace, Tracing } from './tracing.js';

export interface TelemetryLayerDeps {
  readonly tracing: Tracing | undefined;
  readonly accessLog: AccessLog | undefined;
}

/** Header names the tracer may write upstream; matched case-insensitively in the flat list. */
const PROPAGATION: readonly string[] = [
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-b3-parentspanid',
];
/** By length: true where a name of PROPAGATION has that length. */
const LENGTHS: boolean[] = [];
for (const n of PROPAGATION) LENGTHS[n.length] = true;

/**
 * Could `name` be one of PROPAGATION? Its first letter (t, b or x, in any case) and its length
 * say, so the common fields (host, accept, user-agent, content-type...) are skipped without
 * lower-casing them.
 */
function mayPropagate(name: string): boolean {
  const c = name.charCodeAt(0) | 0x20;
  return (c === 0x74 || c === 0x62 || c === 0x78) && LENGTHS[name.length] === true;
}

export function telemetryLayer(direction: Direction, deps: TelemetryLayerDeps): Layer | undefined {
  const { tracing, accessLog } = deps;
  if (tracing === undefined && accessLog === undefined) return undefined;
  const inbound = direction === 'inbound';
  return (next: Handler): Handler =>
    (ctx) => {
      let t: RequestTrace | undefined;
      let rpc: GrpcMethod | undefined;
      if (tracing !== undefined) {
        // Inbound over the mesh tunnel, the caller's verified identity names its side; outbound,
        // the destination's is known only after the mesh chose an endpoint (set when done).
        const identity = inbound ? ctx.peerIdentity : undefined;
        const other = identity === undefined ? undefined : peerFromIdentity(identity);
        rpc = rpcOf(ctx);
        // The attribute record (requestInfo) is built only for a span that records.
        t = tracing.startRequest(
          inbound,
          propagationOf(ctx.rawHeaders),
          ctx.method,
          rpc,
          requestInfo,
          ctx,
          other,
        );
        injectFlat(tracing, t, ctx.upstreamHeaders, ctx.checkedHead);
      }
      const logged = accessLog !== undefined && accessLog.wants();
      if (t !== undefined || logged) {
        const trace = t;
        ctx.onDone((c) => {
          if (trace !== undefined) {
            // Outbound through the mesh: the identity the chosen endpoint proved (http/layer.ts).
            const proven = c.upstreamIdentity;
            if (proven !== undefined && !inbound) tracing?.setPeer(trace, peerFromIdentity(proven));
            tracing?.end(
              trace,
              c.status === 0 ? undefined : c.status,
              c.errorCode === undefined ? undefined : { code: c.errorCode },
              rpc === undefined ? undefined : grpcStatusOf(c.response),
              c.retries,
            );
          }
          if (logged) {
            accessLog.http({
              direction,
              method: c.method,
              path: c.path,
              status: c.status,
              durationMs: c.endTime - c.startTime,
              // Body bytes, as Envoy's BYTES_RECEIVED/BYTES_SENT: the payload after chunked
              // decoding, counted as it passed (http/counting.ts, the forwarder).
              bytesReceived: c.bytesReceived,
              bytesSent: c.bytesSent,
              upstream: c.destinationKey,
              peerAddress: c.peerAddress,
              peerPort: c.peerPort,
              traceId:
                trace !== undefined
                  ? trace.span.spanContext().traceId
                  : traceIdOf(headerValue(c.rawHeaders, 'traceparent')),
              error: c.errorCode,
              httpVersion: c.httpVersion,
              grpcStatus: grpcOf(c),
              retries: c.retries > 0 ? c.retries : undefined,
            });
          }
        });
      }
      next(ctx);
    };
}

/** The call's gRPC status for the access log: undefined unless an HTTP/2 gRPC call had one. */
function grpcOf(ctx: RequestContext): number | undefined {
  if (ctx.httpVersion !== '2') return undefined;
  const s = grpcStatusOf(ctx.response);
  return s < 0 ? undefined : s;
}

/** gRPC is a protocol of its own (HTTP/2 and an application/grpc content type). */
function rpcOf(ctx: RequestContext): GrpcMethod | undefined {
  return ctx.httpVersion === '2' && isGrpcContentType(headerValue(ctx.rawHeaders, 'content-type'))
    ? parseGrpcPath(ctx.path)
    : undefined;
}

function requestInfo(ctx: RequestContext): HttpRequestInfo {
  const host = headerValue(ctx.rawHeaders, 'host');
  let serverAddress: string | undefined;
  let serverPort: number | undefined = ctx.destination.port;
  if (host !== undefined) {
    // host, host:port, [v6] or [v6]:port
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
    if (m) {
      serverAddress = m[1];
      if (m[2] !== undefined) serverPort = Number(m[2]);
    }
  }
  return {
    method: ctx.method,
    path: ctx.path,
    scheme: 'http',
    httpVersion: ctx.httpVersion,
    serverAddress,
    serverPort,
    peerAddress: ctx.peerAddress,
    userAgent: headerValue(ctx.rawHeaders, 'user-agent'),
    // rpc: given to the tracer beside this record (computed once, for the span's name too)
  };
}

/**
 * The caller's propagation fields as the tracer reads them (lower-case names; repeated fields
 * joined with ", " as node:http joined them), from the request's flat field list.
 */
function propagationOf(raw: readonly string[]): IncomingHttpHeaders {
  let out: Record<string, string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!mayPropagate(name)) continue;
    const lower = name.toLowerCase();
    if (!PROPAGATION.includes(lower)) continue;
    const v = raw[i + 1] as string;
    out ??= {};
    const had = out[lower];
    out[lower] = had === undefined ? v : `${had}, ${v}`;
  }
  return out ?? NO_PROPAGATION;
}

/** What a request without propagation fields (most outbound ones) reads as: shared, frozen. */
const NO_PROPAGATION: IncomingHttpHeaders = Object.freeze({});

/** The values injectFlat writes, indexed as PROPAGATION; reused (one request at a time). */
const VALUES: (string | undefined)[] = PROPAGATION.map(() => undefined);

/**
 * Writes the span's propagation headers into the flat upstream list, replacing the caller's
 * fields in place (the list already holds the request's own fields), appending the rest. A
 * replaced field takes the name in lower case, as an appended one has it. The `traceparent`
 * written, formatted from hex ids, goes into the stage's snapshot (CheckedHead.own) when given.
 */
function injectFlat(
  tracing: Tracing,
  t: RequestTrace,
  flat: string[],
  checked: CheckedHead | undefined,
): void {
  const values = VALUES;
  if (!tracing.speaksB3(t)) {
    // The common case: W3C only, formatted here (no propagator, no context, no record).
    const tp = tracing.traceparent(t);
    values[0] = tp;
    checked?.addOwn(PROPAGATION[0] as string, tp);
    values[1] = tracing.tracestate(t);
    for (let k = 2; k < values.length; k++) values[k] = undefined;
  } else {
    const out: Record<string, string | string[] | number | undefined> = {};
    tracing.inject(t, out);
    for (let k = 0; k < PROPAGATION.length; k++) {
      const v = out[PROPAGATION[k] as string];
      values[k] = v === undefined ? undefined : String(v);
    }
  }
  let seen = 0; // bit i: PROPAGATION[i] already written
  for (let i = 0; i < flat.length; i += 2) {
    const raw = flat[i] as string;
    if (!mayPropagate(raw)) continue;
    const k = PROPAGATION.indexOf(raw.toLowerCase());
    if (k < 0) continue;
    const v = values[k];
    if (v === undefined || (seen & (1 << k)) !== 0) {
      // A stale field (x-b3-parentspanid) or a duplicate: remove it.
      flat.splice(i, 2);
      i -= 2;
      continue;
    }
    flat[i] = PROPAGATION[k] as string;
    flat[i + 1] = v;
    seen |= 1 << k;
  }
  for (let k = 0; k < PROPAGATION.length; k++) {
    const v = values[k];
    if (v !== undefined && (seen & (1 << k)) === 0) flat.push(PROPAGATION[k] as string, v);
  }
}

/** The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), for the access log. */
function traceIdOf(traceparent: string | string[] | undefined): string | undefined {
  if (typeof traceparent !== 'string' || traceparent.length < 55 || traceparent.charCodeAt(2) !== 0x2d)
    return undefined;
  const id = traceparent.slice(3, 35);
  return /^[0-9a-f]{32}$/.test(id) && id !== '00000000000000000000000000000000' ? id : undefined;
}

/**
 * The peer's side from its SPIFFE identity `spiffe://<trust domain>/ns/<namespace>/sa/<sa>`:
 * the namespace and the identity itself (the workload name is not part of an identity).
 */
export function peerFromIdentity(identity: string): PeerWorkload {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(identity);
  return { identity, namespace: m?.[1] };
}
