/**
 * HTTP behaviour as layers (STYLE #3): a Handler serves one request through its context; a
 * Layer wraps the next Handler. Each listener composes its layers in one place
 * (inbound/http.ts, outbound/http.ts), the innermost handler being the upstream forwarder.
 * docs/proxy.md documents this interface for layer authors (telemetry, policy).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Target } from '../config/config.js';
import type { Direction } from '../metrics/proxy.js';

export type Handler = (ctx: RequestContext) => void;
export type Layer = (next: Handler) => Handler;
export type DoneListener = (ctx: RequestContext) => void;

/**
 * Everything a layer may read about one request. Set by the engine before the first layer runs;
 * `status`, `errorCode` and `endTime` are filled in as the response goes out. One object per
 * request, its shape fixed at construction (fast property access on the hot path).
 */
export class RequestContext {
  /** HTTP status sent to the client; 0 until the response head is written */
  status = 0;
  /** `x-remora-error` code when the engine answered for the upstream (502/503/504/...) */
  errorCode: string | undefined = undefined;
  /** performance.now() when the response completed or failed; 0 while in flight */
  endTime = 0;
  /**
   * Extra header fields for the upstream request, as a flat [name, value, ...] list (e.g. a
   * `traceparent`). Layers push onto it before calling `next`.
   */
  readonly upstreamHeaders: string[];
  /** Extra header fields for the response to the client, flat [name, value, ...]. */
  responseHeaders: string[] | undefined = undefined;
  private listeners: DoneListener[] | undefined = undefined;

  constructor(
    readonly direction: Direction,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly method: string,
    /** request target as sent (origin-form path with query); never a metric label */
    readonly path: string,
    /** performance.now() when the request head was parsed */
    readonly startTime: number,
    readonly peerAddress: string,
    readonly peerPort: number,
    readonly destination: Target,
    /** `host:port` of the destination */
    readonly destinationKey: string,
    upstreamHeaders: string[],
    /** a body follows the head (Content-Length > 0 or Transfer-Encoding) */
    readonly hasBody: boolean,
  ) {
    this.upstreamHeaders = upstreamHeaders;
  }

  /** Runs `fn` once, when the request is over (completed, failed or aborted by the client). */
  onDone(fn: DoneListener): void {
    (this.listeners ??= []).push(fn);
  }

  /** Called by the engine exactly once per request. */
  finish(now: number): void {
    if (this.endTime !== 0) return;
    this.endTime = now;
    const ls = this.listeners;
    if (ls !== undefined) for (let i = 0; i < ls.length; i++) (ls[i] as DoneListener)(this);
  }
}

/** `compose([a, b, c], h)` serves a request as a(b(c(h))): the first layer sees it first. */
export function compose(layers: readonly Layer[], inner: Handler): Handler {
  let h = inner;
  for (let i = layers.length - 1; i >= 0; i--) h = (layers[i] as Layer)(h);
  return h;
}
