/**
 * Telemetry settings: traces (the standard `OTEL_*` variables plus `REMORA_TRACE_SAMPLING`), the
 * access log, and the workload's own identity (the labels every series and span carries). Pure:
 * takes the engine's parsed config (OTEL_* still raw), returns a frozen telemetry config and every
 * error, so startup can report them with the rest before binding a port. The OpenTelemetry SDK's
 * own env fallbacks are never relied on: every value is passed to it explicitly.
 */
import { DEFAULT_TRUST_DOMAIN, OTEL_ENV } from '../contract.js';

/** Parent-based or not, plus the root ratio; `always_on` is ratio 1, `always_off` ratio 0. */
export interface SamplerConfig {
  /** Follow the caller's sampled flag when a parent is present (the mesh default). */
  readonly parentBased: boolean;
  /** Fraction 0..1 of new (root) traces that are sampled. */
  readonly ratio: number;
}

export interface TracingConfig {
  /** Full URL of the OTLP/HTTP traces endpoint (`…/v1/traces`). */
  readonly url: string;
  /** Extra export headers (`OTEL_EXPORTER_OTLP_HEADERS`, e.g. an API key). */
  readonly headers: Readonly<Record<string, string>>;
  readonly serviceName: string;
  /** `OTEL_RESOURCE_ATTRIBUTES`, added to the resource beside the workload identity. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly sampler: SamplerConfig;
  /** Spans held waiting for export; beyond this new spans are dropped (and counted). */
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  /** Longest a span waits before its batch is sent. */
  readonly scheduleDelayMs: number;
  /** Longest one export may take before its spans are counted as dropped. */
  readonly exportTimeoutMs: number;
}

export interface AccessLogConfig {
  readonly enabled: boolean;
  /** Fraction 0..1 of requests and connections logged. */
  readonly sample: number;
}

/** Who this proxy speaks for: the "source" of outbound and the "destination" of inbound. */
export interface WorkloadIdentity {
  readonly pod: string | undefined;
  readonly namespace: string | undefined;
  readonly workload: string | undefined;
  readonly serviceAccount: string | undefined;
  /** SPIFFE id when namespace and service account are known. */
  readonly identity: string | undefined;
}

export interface TelemetryConfig {
  /** Undefined when tracing is off (no endpoint): then no tracing layer is installed at all. */
  readonly tracing: TracingConfig | undefined;
  readonly accessLog: AccessLogConfig;
  readonly workload: WorkloadIdentity;
}

export const TRACING_DEFAULTS = Object.freeze({
  serviceName: 'remora-proxy',
  // The OTel spec defaults (BSP): 2048 / 512 / 5 s / 30 s.
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduleDelayMs: 5000,
  exportTimeoutMs: 30_000,
});

const SAMPLERS: Readonly<Record<string, { parentBased: boolean; ratio?: number }>> = Object.freeze({
  always_on: { parentBased: false, ratio: 1 },
  always_off: { parentBased: false, ratio: 0 },
  traceidratio: { parentBased: false },
  parentbased_always_on: { parentBased: true, ratio: 1 },
  parentbased_always_off: { parentBased: true, ratio: 0 },
  parentbased_traceidratio: { parentBased: true },
});

/**
 * What telemetry needs from the engine's config (ProxyConfig satisfies it): the Remora fields are
 * already validated there, the `OTEL_*` ones arrive raw and are validated here.
 */
export interface TelemetryInput {
  readonly accessLog: boolean;
  readonly accessLogSample: number;
  /** REMORA_TRACE_SAMPLING (the pod's remora.dev/trace-sampling), a fraction 0..1. */
  readonly traceSampling: number;
  readonly podName: string | undefined;
  readonly podNamespace: string | undefined;
  readonly serviceAccount: string | undefined;
  readonly workload: string | undefined;
  readonly trustDomain?: string | undefined;
  readonly otel: Readonly<Partial<Record<OtelKey, string>>>;
}

type OtelKey = keyof typeof OTEL_ENV;

export function parseTelemetryConfig(input: TelemetryInput): { config: TelemetryConfig; errors: string[] } {
  const errors: string[] = [];
  const workload = parseWorkload(input);
  const accessLog = Object.freeze({
    enabled: input.accessLog && input.accessLogSample > 0,
    sample: input.accessLogSample,
  });
  const tracing = parseTracing(input, errors, workload);
  return { config: Object.freeze({ tracing, accessLog, workload }), errors };
}

function parseWorkload(input: TelemetryInput): WorkloadIdentity {
  const namespace = nonEmpty(input.podNamespace);
  const serviceAccount = nonEmpty(input.serviceAccount);
  const trustDomain = nonEmpty(input.trustDomain) ?? DEFAULT_TRUST_DOMAIN;
  const identity =
    namespace && serviceAccount ? `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}` : undefined;
  return Object.freeze({
    pod: nonEmpty(input.podName),
    namespace,
    workload: nonEmpty(input.workload),
    serviceAccount,
    identity,
  });
}

function parseTracing(
  input: TelemetryInput,
  errors: string[],
  workload: WorkloadIdentity,
): TracingConfig | undefined {
  const env = input.otel;
  const before = errors.length;
  const url = tracesUrl(env, errors);
  const protocol = nonEmpty(env.protocol);
  if (protocol !== undefined && protocol !== 'http/protobuf') {
    errors.push(`${OTEL_ENV.protocol}: only "http/protobuf" is supported, got "${protocol}"`);
  }
  const sampler = parseSampler(input, errors);
  const maxQueueSize = positiveInt(env, 'bspMaxQueueSize', TRACING_DEFAULTS.maxQueueSize, errors);
  let maxExportBatchSize = positiveInt(
    env,
    'bspMaxExportBatchSize',
    TRACING_DEFAULTS.maxExportBatchSize,
    errors,
  );
  // The spec says a batch larger than the queue is clamped, not an error.
  if (maxExportBatchSize > maxQueueSize) maxExportBatchSize = maxQueueSize;
  const scheduleDelayMs = positiveInt(env, 'bspScheduleDelay', TRACING_DEFAULTS.scheduleDelayMs, errors);
  const exportTimeoutMs = positiveInt(
    env,
    'bspExportTimeout',
    positiveInt(env, 'timeout', TRACING_DEFAULTS.exportTimeoutMs, errors),
    errors,
  );
  const headers = keyValues(env, 'headers', errors);
  const resourceAttributes = keyValues(env, 'resourceAttributes', errors);
  const serviceName =
    nonEmpty(env.serviceName) ??
    resourceAttributes['service.name'] ??
    workload.workload ??
    TRACING_DEFAULTS.serviceName;

  const disabled =
    nonEmpty(env.sdkDisabled)?.toLowerCase() === 'true' ||
    nonEmpty(env.tracesExporter)?.toLowerCase() === 'none';
  if (url === undefined || disabled || errors.length > before) return undefined;
  return Object.freeze({
    url,
    headers: Object.freeze(headers),
    serviceName,
    resourceAttributes: Object.freeze(resourceAttributes),
    sampler,
    maxQueueSize,
    maxExportBatchSize,
    scheduleDelayMs,
    exportTimeoutMs,
  });
}

function tracesUrl(env: TelemetryInput['otel'], errors: string[]): string | undefined {
  // The signal-specific variable is used as is; the generic one is a base the path is added to.
  const specific = nonEmpty(env.tracesEndpoint);
  const base = nonEmpty(env.endpoint);
  const name = specific !== undefined ? OTEL_ENV.tracesEndpoint : OTEL_ENV.endpoint;
  const raw = specific ?? base;
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    errors.push(`${name}: not a URL: "${raw}"`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    errors.push(`${name}: expected an http:// or https:// URL, got "${raw}"`);
    return undefined;
  }
  if (specific !== undefined) return url.href;
  return `${url.href.replace(/\/+$/, '')}/v1/traces`;
}

function parseSampler(input: TelemetryInput, errors: string[]): SamplerConfig {
  // An explicit OTEL_TRACES_SAMPLER wins; otherwise the mesh's own setting (the pod annotation
  // remora.dev/trace-sampling, default 1) is a parent-based ratio, so a sampled caller always
  // gets a complete trace through every sidecar.
  const env = input.otel;
  const raw = nonEmpty(env.sampler);
  if (raw === undefined) return Object.freeze({ parentBased: true, ratio: input.traceSampling });
  const name = raw.toLowerCase();
  const known = SAMPLERS[name];
  if (known === undefined) {
    errors.push(
      `${OTEL_ENV.sampler}: unsupported sampler "${raw}" (one of ${Object.keys(SAMPLERS).join(', ')})`,
    );
    return { parentBased: true, ratio: 1 };
  }
  if (known.ratio !== undefined) return Object.freeze({ parentBased: known.parentBased, ratio: known.ratio });
  let ratio = 1;
  const arg = nonEmpty(env.samplerArg);
  if (arg !== undefined) {
    const n = /^(\d+(\.\d*)?|\.\d+)$/.test(arg) ? Number(arg) : NaN;
    if (n >= 0 && n <= 1) ratio = n;
    else errors.push(`${OTEL_ENV.samplerArg}: expected a fraction 0..1, got "${arg}"`);
  }
  return Object.freeze({ parentBased: known.parentBased, ratio });
}

function positiveInt(env: TelemetryInput['otel'], key: OtelKey, dflt: number, errors: string[]): number {
  const raw = nonEmpty(env[key]);
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw) || Number(raw) <= 0 || !Number.isSafeInteger(Number(raw))) {
    errors.push(`${OTEL_ENV[key]}: expected a positive integer, got "${raw}"`);
    return dflt;
  }
  return Number(raw);
}

/** W3C Baggage-like `k1=v1,k2=v2` with percent-encoded values (the OTel format for both). */
function keyValues(env: TelemetryInput['otel'], key: OtelKey, errors: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const name = OTEL_ENV[key];
  const raw = nonEmpty(env[key]);
  if (raw === undefined) return out;
  for (const part of raw.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : '';
    if (key === '') {
      errors.push(`${name}: expected key=value pairs separated by commas, got "${part.trim()}"`);
      continue;
    }
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      errors.push(`${name}: bad percent-encoding in the value of "${key}"`);
    }
  }
  return out;
}

function nonEmpty(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}
