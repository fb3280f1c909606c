/**
 * Traces: one SERVER span per inbound HTTP request, one CLIENT span per outbound one, exported
 * with OTLP over http/protobuf. Spans are manual: nothing here patches `http`, `net` or undici
 * (auto-instrumentation would trace the proxy's own hot path and its own exports). No global
 * OpenTelemetry state is registered either: the proxy's spans never mix with anything else
 * loaded in the process, and the context is passed explicitly instead of through async hooks.
 *
 * Propagation: W3C `traceparent`/`tracestate` is read on input, and B3 (single `b3` header or
 * the `X-B3-*` set) when no `traceparent` is present; the upstream request always gets a
 * `traceparent` whose parent-id is the proxy's span, and B3 headers rewritten the same way when
 * the caller spoke B3, so a B3-only app sees a coherent parent too.
 */
import { randomFillSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type {
  Attributes,
  Context,
  Span,
  SpanContext,
  TextMapGetter,
  TextMapSetter,
  Tracer,
} from '@opentelemetry/api';
import { TraceState, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import type { IdGenerator, Sampler } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import { VERSION } from '../contract.js';
import { BoundedBatchProcessor } from './batch.js';
import type { SpanCounters } from './batch.js';
import type { SamplerConfig, TracingConfig, WorkloadIdentity } from './config.js';

/** What the HTTP layer knows about a request when it starts. */
export interface HttpRequestInfo {
  readonly method: string;
  /** Request target as received; the query string is never recorded (it may carry secrets). */
  readonly path: string;
  readonly scheme: 'http' | 'https';
  /** `1.0`, `1.1` or `2`. */
  readonly httpVersion: string;
  /** Host the request is for (Host / :authority without the port) and its port. */
  readonly serverAddress: string | undefined;
  readonly serverPort: number | undefined;
  readonly peerAddress: string | undefined;
  readonly userAgent: string | undefined;
  /** a gRPC call (OTel RPC conventions): its service and method; the span is named after them */
  readonly rpc?: GrpcMethod | undefined;
}

/** A gRPC call's service and method (from its `:path`). */
export interface GrpcMethod {
  readonly service: string;
  readonly method: string;
}

/** The other side of the call when known (peer certificate inbound, discovery outbound). */
export interface PeerWorkload {
  readonly workload?: string | undefined;
  readonly namespace?: string | undefined;
  readonly identity?: string | undefined;
}

/** How the caller propagated its context; B3 headers are rewritten in the same form. */
const enum B3Form {
  None = 0,
  Single = 1,
  Multi = 2,
}

/** One request's span plus what injection needs to know. */
export interface RequestTrace {
  readonly span: Span;
  readonly b3: B3Form;
  readonly kind: SpanKind;
}

export type OutgoingHeaders = Record<string, string | string[] | number | undefined>;

/** OpenTelemetry RPC semantic conventions (gRPC) */
export const RPC_ATTR = Object.freeze({
  system: 'rpc.system',
  service: 'rpc.service',
  method: 'rpc.method',
  grpcStatusCode: 'rpc.grpc.status_code',
});

/**
 * gRPC codes a SERVER span counts as an error (OTel RPC conventions for gRPC); a CLIENT span
 * counts every code but OK.
 */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

export const ATTR = Object.freeze({
  direction: 'remora.direction',
  sourceWorkload: 'remora.source.workload',
  sourceNamespace: 'remora.source.namespace',
  sourceIdentity: 'remora.source.identity',
  destinationWorkload: 'remora.destination.workload',
  destinationNamespace: 'remora.destination.namespace',
  destinationIdentity: 'remora.destination.identity',
  /** retries the proxy sent upstream for this request (set when > 0) */
  retries: 'remora.retries',
});

const headerGetter: TextMapGetter<IncomingHttpHeaders> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

const headerSetter: TextMapSetter<OutgoingHeaders> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const w3c = new W3CTraceContextPropagator();
const b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
const b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });

/** Random bytes decoded to hex at a time: 2 KiB, 85 requests' trace and span ids. */
const POOL_BYTES = 2048;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

/**
 * Random ids in lower-case hex, cut from one string of random bytes (crypto.randomFillSync)
 * decoded once per POOL_BYTES: an id is a slice of it, where the SDK's RandomIdGenerator filled
 * a buffer from Math.random and decoded it for every id (a native call each, ~3,000
 * instructions per request with its argument checks: docs/performance.md). An id of zeros,
 * which W3C forbids, is drawn again.
 */
export class HexIds {
  readonly #bytes = Buffer.allocUnsafe(POOL_BYTES);
  #hex = '';
  #at = 0;
  #word = 0;

  #take(digits: number): string {
    let at = this.#at;
    if (at + digits > this.#hex.length) {
      this.#hex = randomFillSync(this.#bytes).toString('hex');
      at = 0;
    }
    this.#at = at + digits;
    return this.#hex.slice(at, at + digits);
  }

  traceId(): string {
    let id = this.#take(32);
    // The first digit first: comparing a slice with the zeros otherwise walks both strings.
    while (id.charCodeAt(0) === 0x30 && id === ZERO_TRACE_ID) id = this.#take(32);
    // The id's digits were decoded from the 16 bytes before #at (a digit pair per byte).
    const b = this.#bytes;
    const o = (this.#at >> 1) - 16;
    this.#word =
      (b.readUInt32BE(o) ^ b.readUInt32BE(o + 4) ^ b.readUInt32BE(o + 8) ^ b.readUInt32BE(o + 12)) >>> 0;
    return id;
  }

  /**
   * What the SDK's TraceIdRatioBasedSampler compares with its bound for the last trace id: its
   * four 8-digit groups read as 32-bit numbers, XORed. Those groups are the big-endian words of
   * the bytes the id was decoded from, so this reads four words instead of 32 digits (with the
   * SDK's own 32-digit validity check before them: together ~3,300 instructions per request).
   */
  lastTraceWord(): number {
    return this.#word;
  }

  spanId(): string {
    let id = this.#take(16);
    while (id.charCodeAt(0) === 0x30 && id === ZERO_SPAN_ID) id = this.#take(16);
    return id;
  }
}

/**
 * Random ids for the SDK (HexIds), except that the next trace id can be given beforehand: a
 * root span the proxy sampled itself (Tracing.startRequest) gets the trace id the decision was
 * made on.
 */
class StagedIds implements IdGenerator {
  readonly #random = new HexIds();
  #next: string | undefined;

  stage(traceId: string | undefined): void {
    this.#next = traceId;
  }

  generateTraceId(): string {
    const n = this.#next;
    if (n === undefined) return this.#random.traceId();
    this.#next = undefined;
    return n;
  }

  generateSpanId(): string {
    return this.#random.spanId();
  }

  /** HexIds.lastTraceWord of the last random trace id */
  lastTraceWord(): number {
    return this.#random.lastTraceWord();
  }
}

/** What the sampler is given for a request's span: no attributes, no links (as startSpan does). */
const NO_ATTRIBUTES: Attributes = Object.freeze({});
const NO_LINKS = Object.freeze([]) as unknown as [];

export class Tracing {
  readonly #provider: BasicTracerProvider;
  readonly #processor: BoundedBatchProcessor;
  readonly #tracer: Tracer;
  readonly #sampler: Sampler;
  /** The sampler follows a parent's decision (ParentBasedSampler with its defaults). */
  readonly #parentBased: boolean;
  /**
   * A root trace (no valid caller) is sampled when its trace word (HexIds.lastTraceWord) is
   * below this: the bound the SDK's TraceIdRatioBasedSampler computes for the ratio, 2^32 for
   * always (ratio 1, AlwaysOnSampler) and 0 for never (AlwaysOffSampler). Those samplers decide
   * a root span on the trace id alone, so this is their decision (tested against them).
   */
  readonly #rootBound: number;
  readonly #ids = new StagedIds();
  readonly #self: WorkloadIdentity;
  #exported = 0;
  #dropped = 0;

  constructor(config: TracingConfig, self: WorkloadIdentity, counters?: SpanCounters) {
    this.#self = self;
    const exporter = new OTLPTraceExporter({
      url: config.url,
      headers: { ...config.headers },
      timeoutMillis: config.exportTimeoutMs,
      // One batch in flight at a time (the processor's rule); a spare slot for shutdown's flush.
      concurrencyLimit: 2,
    });
    this.#processor = new BoundedBatchProcessor(exporter, config, {
      dropped: (n) => {
        this.#dropped += n;
        counters?.dropped(n);
      },
      exported: (n) => {
        this.#exported += n;
        counters?.exported(n);
      },
    });
    const resource = resourceFromAttributes({
      ...config.resourceAttributes,
      [ATTR_SERVICE_NAME]: config.serviceName,
      [ATTR_SERVICE_VERSION]: VERSION,
      ...definedOnly({
        'service.namespace': self.namespace,
        'service.instance.id': self.pod,
        'k8s.pod.name': self.pod,
        'k8s.namespace.name': self.namespace,
      }),
    });
    this.#sampler = buildSampler(config.sampler);
    this.#parentBased = config.sampler.parentBased;
    this.#rootBound = rootBound(config.sampler.ratio);
    this.#provider = new BasicTracerProvider({
      resource,
      sampler: this.#sampler,
      idGenerator: this.#ids,
      spanProcessors: [this.#processor],
    });
    this.#tracer = this.#provider.getTracer('remora-proxy', VERSION);
  }

  /** Spans exported, dropped (queue full, export failed or timed out) and waiting. */
  stats(): { exported: number; dropped: number; queued: number } {
    return { exported: this.#exported, dropped: this.#dropped, queued: this.#processor.queued };
  }

  /** Inbound: the caller's context (W3C, else B3) is the parent of a SERVER span. */
  startServer(headers: IncomingHttpHeaders, info: HttpRequestInfo, peer?: PeerWorkload): RequestTrace {
    return this.startRequest(true, headers, info.method, info.rpc, itself, info, peer);
  }

  /** Outbound: the app's context (if it propagated one) is the parent of a CLIENT span. */
  startClient(headers: IncomingHttpHeaders, info: HttpRequestInfo, destination?: PeerWorkload): RequestTrace {
    return this.startRequest(false, headers, info.method, info.rpc, itself, info, destination);
  }

  /**
   * What the HTTP layer calls per request: a SERVER (`server`) or CLIENT span named after the
   * method or the gRPC call, whose attributes `infoOf(request)` builds only if the span records.
   * Most requests are not sampled (1 % is the bench's and a common setting): they pay for no
   * attribute record.
   */
  startRequest<T>(
    server: boolean,
    headers: IncomingHttpHeaders,
    method: string,
    rpc: GrpcMethod | undefined,
    infoOf: (request: T) => HttpRequestInfo,
    request: T,
    other?: PeerWorkload,
  ): RequestTrace {
    const kind = server ? SpanKind.SERVER : SpanKind.CLIENT;
    let b3 = B3Form.None;
    let remote: SpanContext | undefined;
    const tp = headers.traceparent;
    if (tp !== undefined) {
      // As the W3C propagator reads a carrier: the first of an array, an array of states joined.
      const ts = headers.tracestate;
      remote = w3cParent(
        typeof tp === 'string' ? tp : (tp[0] ?? ''),
        typeof ts === 'string' ? ts : ts?.join(','),
      );
    } else if (headers.b3 !== undefined || headers['x-b3-traceid'] !== undefined) {
      b3 = headers.b3 !== undefined ? B3Form.Single : B3Form.Multi;
      remote = trace.getSpanContext(b3Single.extract(ROOT_CONTEXT, headers, headerGetter));
    }
    const name = rpc === undefined ? method : `${rpc.service}/${rpc.method}`;
    // The sampling decision first, as the SDK's startSpan makes it (the same sampler, trace id,
    // name and kind): most requests are not sampled and get only their span context, without
    // the SDK's per-span work (context records, attribute and link records, its own metrics).
    // w3cParent's pattern already held the ids to lower-case hex and refused zeros.
    const caller =
      remote !== undefined && (b3 === B3Form.None || trace.isSpanContextValid(remote)) ? remote : undefined;
    let traceId: string;
    let parent: Context = ROOT_CONTEXT;
    let recorded: boolean;
    let traceState = caller?.traceState;
    if (caller === undefined) {
      // A root: the sampler's decision on the new id, read off the bytes it came from.
      traceId = this.#ids.generateTraceId();
      recorded = this.#ids.lastTraceWord() < this.#rootBound;
    } else if (this.#parentBased) {
      traceId = caller.traceId;
      // What ParentBasedSampler decides for a remote parent: its flag, sampled or not.
      recorded = (caller.traceFlags & TraceFlags.SAMPLED) !== 0;
      if (recorded) parent = trace.setSpanContext(ROOT_CONTEXT, caller);
    } else {
      traceId = caller.traceId;
      parent = trace.setSpanContext(ROOT_CONTEXT, caller);
      const d = this.#sampler.shouldSample(parent, traceId, name, kind, NO_ATTRIBUTES, NO_LINKS);
      recorded = d.decision !== SamplingDecision.NOT_RECORD;
      traceState = d.traceState ?? traceState;
    }
    if (!recorded) {
      const context: SpanContext = {
        traceId,
        spanId: this.#ids.generateSpanId(),
        traceFlags: TraceFlags.NONE,
        traceState,
      };
      return { span: trace.wrapSpanContext(context), b3, kind };
    }
    // A root span keeps the trace id it was sampled on; the SDK samples it again, the same way.
    if (caller === undefined) this.#ids.stage(traceId);
    const span = this.#tracer.startSpan(name, { kind }, parent);
    this.#ids.stage(undefined); // taken by startSpan; never left for another span
    // Attributes only for spans that will be exported: an unsampled request allocates nothing more.
    if (span.isRecording()) span.setAttributes(this.#attributes(kind, infoOf(request), rpc, other));
    return { span, b3, kind };
  }

  /**
   * The upstream `traceparent` for `t`: the proxy's span as parent, the sampling decision as
   * flags (W3C Trace Context level 1, version 00), what W3CTraceContextPropagator writes.
   */
  traceparent(t: RequestTrace): string {
    const c = t.span.spanContext();
    const f = c.traceFlags & 0xff;
    return `00-${c.traceId}-${c.spanId}-${f < 16 ? '0' : ''}${f.toString(16)}`;
  }

  /** The upstream `tracestate` (the caller's, carried by the span), undefined when none. */
  tracestate(t: RequestTrace): string | undefined {
    const s = t.span.spanContext().traceState;
    if (s === undefined) return undefined;
    const v = s.serialize();
    return v === '' ? undefined : v;
  }

  /** The caller spoke B3 (and no traceparent): its B3 headers are rewritten, see inject. */
  speaksB3(t: RequestTrace): boolean {
    return t.b3 !== B3Form.None;
  }

  /** Writes the proxy span's context into the upstream request's headers. */
  inject(t: RequestTrace, out: OutgoingHeaders): void {
    const ctx = trace.setSpan(ROOT_CONTEXT, t.span);
    w3c.inject(ctx, out, headerSetter);
    if (t.span.spanContext().traceState === undefined) delete out.tracestate;
    if (t.b3 === B3Form.Single) b3Single.inject(ctx, out, headerSetter);
    else if (t.b3 === B3Form.Multi) {
      // The old parent id would contradict the new span id.
      delete out['x-b3-parentspanid'];
      b3Multi.inject(ctx, out, headerSetter);
    }
  }

  /**
   * Names the other side once it is known after the span started: outbound, the destination's
   * identity is only known when the mesh has chosen an endpoint and its tunnel verified it.
   * Sets `remora.destination.*` on a CLIENT span, `remora.source.*` on a SERVER span.
   */
  setPeer(t: RequestTrace, peer: PeerWorkload): void {
    const span = t.span;
    if (!span.isRecording()) return;
    const client = t.kind === SpanKind.CLIENT;
    if (peer.identity !== undefined)
      span.setAttribute(client ? ATTR.destinationIdentity : ATTR.sourceIdentity, peer.identity);
    if (peer.namespace !== undefined)
      span.setAttribute(client ? ATTR.destinationNamespace : ATTR.sourceNamespace, peer.namespace);
    if (peer.workload !== undefined)
      span.setAttribute(client ? ATTR.destinationWorkload : ATTR.sourceWorkload, peer.workload);
  }

  /** Ends the span with the response status, or with the error that prevented one. */
  end(
    t: RequestTrace,
    status: number | undefined,
    error?: { code?: string; name?: string; message?: string },
    /** a gRPC call's status (0..16), -1 or absent when not a call or none was seen */
    grpcStatus?: number,
    /** retries sent upstream */
    retries = 0,
  ): void {
    const span = t.span;
    if (span.isRecording()) {
      if (retries > 0) span.setAttribute(ATTR.retries, retries);
      if (status !== undefined && status > 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      const grpc = grpcStatus !== undefined && grpcStatus >= 0;
      if (grpc) span.setAttribute(RPC_ATTR.grpcStatusCode, grpcStatus);
      // Semantic conventions: 4xx is an error for the client, not for the server; a gRPC
      // call's outcome is its status (HTTP 200 carries failures too).
      const failed =
        error !== undefined ||
        status === undefined ||
        status >= 500 ||
        (t.kind === SpanKind.CLIENT && status >= 400) ||
        (grpc && grpcStatus !== 0 && (t.kind === SpanKind.CLIENT || GRPC_SERVER_ERRORS.has(grpcStatus)));
      if (failed) {
        span.setAttribute(ATTR_ERROR_TYPE, error?.code ?? error?.name ?? String(status ?? '_OTHER'));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message });
      }
    }
    span.end();
  }

  forceFlush(): Promise<void> {
    return this.#processor.forceFlush();
  }

  /** Flushes what is queued (bounded by the export timeout), then stops. */
  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }

  #attributes(
    kind: SpanKind,
    info: HttpRequestInfo,
    rpc: GrpcMethod | undefined,
    other: PeerWorkload | undefined,
  ): Attributes {
    const q = info.path.indexOf('?');
    const inbound = kind === SpanKind.SERVER;
    const src = inbound ? other : this.#self;
    const dst = inbound ? this.#self : other;
    return definedOnly({
      [ATTR_HTTP_REQUEST_METHOD]: info.method,
      [ATTR_URL_PATH]: q < 0 ? info.path : info.path.slice(0, q),
      [ATTR_URL_SCHEME]: info.scheme,
      [ATTR_SERVER_ADDRESS]: info.serverAddress,
      [ATTR_SERVER_PORT]: info.serverPort,
      [ATTR_NETWORK_PEER_ADDRESS]: info.peerAddress,
      [ATTR_NETWORK_PROTOCOL_VERSION]: info.httpVersion,
      [ATTR_USER_AGENT_ORIGINAL]: info.userAgent,
      [ATTR.direction]: inbound ? 'inbound' : 'outbound',
      [ATTR.sourceWorkload]: src?.workload,
      [ATTR.sourceNamespace]: src?.namespace,
      [ATTR.sourceIdentity]: src?.identity,
      [ATTR.destinationWorkload]: dst?.workload,
      [ATTR.destinationNamespace]: dst?.namespace,
      [ATTR.destinationIdentity]: dst?.identity,
      [RPC_ATTR.system]: rpc === undefined ? undefined : 'grpc',
      [RPC_ATTR.service]: rpc?.service,
      [RPC_ATTR.method]: rpc?.method,
    });
  }
}

/** A W3C `traceparent` (Trace Context level 1): version, trace id, parent id, flags. */
const TRACEPARENT = /^\s?([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(-.*)?\s?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * The caller's span context from `traceparent` and `tracestate`, accepting exactly what
 * W3CTraceContextPropagator.extract accepts (tested against it): version ff, an all-zero id or
 * more parts after a version 00 make it absent, as do two `traceparent` fields (joined with ", ").
 */
export function w3cParent(traceparent: string, tracestate: string | undefined): SpanContext | undefined {
  const m = TRACEPARENT.exec(traceparent);
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === 'ff' || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  if (version === '00' && rest !== undefined) return undefined;
  const context: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
  if (tracestate) context.traceState = new TraceState(tracestate);
  return context;
}

function itself(info: HttpRequestInfo): HttpRequestInfo {
  return info;
}

/** Tracing.#rootBound for a sampling ratio (the SDK's bound: floor(ratio × (2^32 − 1))) */
export function rootBound(ratio: number): number {
  if (!(ratio > 0)) return 0;
  return ratio >= 1 ? 0x100000000 : Math.floor(ratio * 0xffffffff);
}

function buildSampler(cfg: SamplerConfig): Sampler {
  const root: Sampler =
    cfg.ratio >= 1
      ? new AlwaysOnSampler()
      : cfg.ratio <= 0
        ? new AlwaysOffSampler()
        : new TraceIdRatioBasedSampler(cfg.ratio);
  return cfg.parentBased ? new ParentBasedSampler({ root }) : root;
}

function definedOnly<T>(o: Record<string, T | undefined>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k in o) {
    const v = o[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
