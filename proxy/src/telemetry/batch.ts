/**
 * A batch span processor with a hard memory bound and exact counters. The SDK's own
 * BatchSpanProcessor drops silently (a diag message at most); a mesh must be able to say how
 * many spans a down or slow collector cost, so this one counts every span it drops and every
 * span the collector accepted. At most one export is in flight; a span that finds the queue full
 * is dropped at once (O(1), no allocation), so traffic never waits for the collector.
 */
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface SpanCounters {
  dropped(n: number): void;
  exported(n: number): void;
}

export interface BoundedBatchOptions {
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly scheduleDelayMs: number;
  readonly exportTimeoutMs: number;
}

export class BoundedBatchProcessor implements SpanProcessor {
  readonly #exporter: SpanExporter;
  readonly #opts: BoundedBatchOptions;
  readonly #counters: SpanCounters;
  #queue: ReadableSpan[] = [];
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #shutDown = false;

  constructor(exporter: SpanExporter, opts: BoundedBatchOptions, counters: SpanCounters) {
    this.#exporter = exporter;
    this.#opts = opts;
    this.#counters = counters;
  }

  /** Spans waiting for export (for tests and the admin config dump). */
  get queued(): number {
    return this.#queue.length;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.#shutDown || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#queue.length >= this.#opts.maxQueueSize) {
      this.#counters.dropped(1);
      return;
    }
    this.#queue.push(span);
    if (this.#inFlight !== undefined) return;
    if (this.#queue.length >= this.#opts.maxExportBatchSize) this.#exportNext();
    else this.#arm();
  }

  async forceFlush(): Promise<void> {
    while (this.#inFlight !== undefined || this.#queue.length > 0) {
      if (this.#inFlight === undefined) this.#exportNext();
      await this.#inFlight;
    }
  }

  async shutdown(): Promise<void> {
    if (this.#shutDown) return;
    await this.forceFlush();
    this.#shutDown = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#exporter.shutdown();
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#inFlight === undefined) this.#exportNext();
    }, this.#opts.scheduleDelayMs);
    // Pending spans must not keep a draining proxy alive; shutdown() flushes them explicitly.
    this.#timer.unref();
  }

  #exportNext(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#opts.maxExportBatchSize);
    this.#inFlight = this.#exportBatch(batch).then(() => {
      this.#inFlight = undefined;
      if (this.#queue.length >= this.#opts.maxExportBatchSize) this.#exportNext();
      else if (this.#queue.length > 0) this.#arm();
    });
  }

  #exportBatch(batch: ReadableSpan[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        if (ok) this.#counters.exported(batch.length);
        else this.#counters.dropped(batch.length);
        resolve();
      };
      // A collector that accepts the connection but never answers must not stall the queue.
      const timeout = setTimeout(() => settle(false), this.#opts.exportTimeoutMs);
      timeout.unref();
      try {
        this.#exporter.export(batch, (result: ExportResult) =>
          settle(result.code === ExportResultCode.SUCCESS),
        );
      } catch {
        settle(false);
      }
    });
  }
}
