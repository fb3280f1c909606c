/**
 * The protocol seam (issue 11 §3): what an HTTP server stage gives every request, whatever the
 * protocol under it (HTTP/1.1 on node:http or on the project's codec, HTTP/2 later). Layers,
 * the forwarder and the local answers see only these interfaces through RequestContext
 * (layer.ts), never a socket or a node:http object, so a new protocol is a new stage that
 * implements them and nothing above it changes. docs/architecture.md "The protocol seam".
 *
 * Nothing here imports a protocol implementation (writeHeadFields names the HTTP/1 codec's head
 * type, a type only), and nothing from policy/ or telemetry/.
 */
import type { Target } from '../config/config.js';
import type { ResponseHead } from '../http1/head.js';
import type { PeerMetrics } from '../metrics/proxy.js';

/**
 * The downstream side of one exchange: the response to the client. One per request; its
 * methods are called by the forwarder and by the one error writer (local.ts) only.
 */
export interface DownstreamResponse {
  /** the response head went out (after this only body, end or a cut are possible) */
  readonly headersSent: boolean;
  /** the whole response, its end included, was handed to the transport */
  readonly finished: boolean;
  /**
   * Sends the head: `headers` is the flat [name, value, ...] list of end-to-end fields (no
   * framing, no hop-by-hop fields: the stage frames the body itself, `content-length` kept when
   * given). `reason` may be '' (the stage's default phrase). Status 1xx is not sent this way.
   */
  writeHead(status: number, reason: string, headers: readonly string[]): void;
  /**
   * A stage that writes HTTP/1 (h1server) may take a response head our HTTP/1 codec parsed as
   * it is (the forwarder's case, dispatch.ts `takesFields`): the stage drops its hop-by-hop
   * fields itself and forwards the rest as they came, then `extra` (flat, as writeHead's list).
   * `head` is the codec's scratch, valid during this call only.
   */
  writeHeadFields?(head: ResponseHead, extra: readonly string[] | undefined): void;
  /** Body bytes; false: the transport is full, wait for `owner.responseDrained()`. */
  write(chunk: Buffer): boolean;
  /**
   * Ends the response, with a last body piece and trailers (flat; dropped where the framing
   * cannot carry them, e.g. a Content-Length body).
   */
  end(last?: Buffer | string, trailers?: readonly string[] | null): void;
  /** Cuts the exchange: the client sees an incomplete response (HTTP/1: the connection closes). */
  destroy(): void;
  /**
   * The one object told about this response's transport (the forwarder's exchange). Set once;
   * no closure per request (see ResponseOwner).
   */
  attach(owner: ResponseOwner): void;
  /** bytes moved either way on the transport carrying this exchange (idle timeouts) */
  bytesMoved(): number;
}

/** What a DownstreamResponse tells the exchange that owns it. */
export interface ResponseOwner {
  /** the transport drained after `write` returned false */
  responseDrained(): void;
  /**
   * The client can no longer receive this response: it went away (or the stage cut the
   * connection) before `end`. At most once. A stage may also call it after `end` (node:http
   * does, on its 'close'); the owner is done by then and ignores it.
   */
  clientClosed(): void;
}

/**
 * The request body as the forwarder hands it upstream: the subset of a Readable that the
 * upstream clients use (undici, http/fastpool.ts, the codec pool's DispatchHandler contract).
 * Backpressure: `pause()` stops the stage from reading the client; `resume()` starts it again.
 */
export interface RequestBody {
  on(event: 'data', fn: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  pause(): this;
  resume(): this;
  /** some body bytes were taken (a retry must not send the request again) */
  readonly readableDidRead: boolean;
  readonly destroyed: boolean;
  /** body bytes received from the client so far (payload, after chunked decoding) */
  readonly bytesReceived: number;
  /**
   * A gRPC call's deadline (performance.now() ms) when the HTTP/2 stage knows one: the HTTP/2
   * client sends what is left of it as `grpc-timeout`, and the forwarder sends no retry past it.
   */
  readonly deadline?: number | undefined;
  /**
   * A chunked body's trailer fields (flat, filtered: headers.ts filterTrailers), set before
   * 'end'; null without any. Only the codec stage fills it (the node stage drops them).
   */
  readonly trailers?: readonly string[] | null;
}

/**
 * What the stage knows about the connection a request came on, fixed for the connection's life
 * (tcp/connection.ts ConnectionInfo is one; an HTTP/2 stage shares one between its streams).
 */
export interface ConnectionFacts {
  readonly peerAddress: string;
  readonly peerPort: number;
  /** the SPIFFE identity the peer proved (inbound over the mTLS tunnel), else undefined */
  readonly peerIdentity: string | undefined;
  readonly destination: Target;
  /** `host:port` of the destination, built once */
  readonly destinationKey: string;
  /** whose series the connection's requests count in (absent: the listener's unknown peer) */
  readonly peer?: PeerMetrics;
}

/** What a route decided that the HTTP core reads (policy/types.ts Route is one). */
export interface RouteFacts {
  readonly timeoutMs?: number | undefined;
  readonly idleTimeoutMs?: number | undefined;
}

/**
 * Why an attempt failed: `grpc-status` is a gRPC call answered trailers-only with a status the
 * route's `retries.grpcStatus` names (its request message kept for the replay: forward.ts).
 */
export type RetryReason = 'connect-failure' | '5xx' | 'reset' | 'grpc-status';

/** A route's retry decisions as the forwarder asks them (policy/retry.ts RouteRetry is one). */
export interface RetryDecider {
  /** the gRPC codes retried, as bits (1 << code); 0: none, the request message is not kept */
  readonly grpcStatuses: number;
  /** `grpcStatus`: the call's status, for reason `grpc-status` */
  shouldRetry(
    reason: RetryReason,
    failed: number,
    method: string,
    hasBody: boolean,
    bodyRead: boolean,
    grpcStatus?: number,
  ): boolean;
  backoff(n: number): number;
  sent(reason: RetryReason): void;
}

/**
 * The value of request header `lower` (a lower-case name) in a flat [name, value, ...] list,
 * the first one when repeated; undefined when absent. Allocation-free until it matches.
 */
export function headerValue(raw: readonly string[], lower: string): string | undefined {
  const n = lower.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length !== n) continue;
    let k = 0;
    while (k < n && (name.charCodeAt(k) | 0x20) === lower.charCodeAt(k)) k++;
    if (k === n) return raw[i + 1] as string;
  }
  return undefined;
}
