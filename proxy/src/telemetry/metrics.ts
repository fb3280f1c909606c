/**
 * Telemetry's own series in the engine's registry: what tracing cost (spans the collector
 * accepted, spans dropped because it was down, slow or the queue was full).
 */
import { METRICS } from '../contract.js';
import type { Registry } from '../metrics/registry.js';
import type { SpanCounters } from './batch.js';

export function registerTraceCounters(registry: Registry): SpanCounters {
  const dropped = registry
    .counter(
      METRICS.traceSpansDropped,
      'Spans dropped before export (queue full, export failed or timed out).',
    )
    .child();
  const exported = registry
    .counter(METRICS.traceSpansExported, 'Spans accepted by the OTLP collector.')
    .child();
  return {
    dropped: (n) => dropped.inc(n),
    exported: (n) => exported.inc(n),
  };
}
