/**
 * HTTP behaviour as layers (STYLE #3): a Handler serves one request through its context; a
 * Layer wraps the next Handler. Each listener composes its layers in one place
 * (inbound/http.ts, outbound/http.ts), the innermost handler being the upstream forwarder.
 * docs/proxy.md documents this interface for layer authors (telemetry, policy).
 */
import type { Socket } from 'node:net';
import type { Target } from '../config/config.js';
import type { ProxyError } from '../errors.js';
import type { CheckedHead } from './dispatch.js';
import type { Direction, DirectionMetrics, PeerMetrics } from '../metrics/proxy.js';
import type {
  ConnectionFacts,
  DownstreamResponse,
  RequestBody,
  RetryDecider,
  RouteFacts,
} from './exchange.js';
import { answerLocally } from './local.js';

export type Handler = (ctx: RequestContext) => void;
export type Layer = (next: Handler) => Handler;
export type DoneListener = (ctx: RequestContext) => void;

/** What a listener lends its requests so a layer can answer one itself (local.ts). */
export interface LocalAnswerDeps {
  readonly metrics: DirectionMetrics;
  /** true while draining: answers then carry `Connection: close` */
  readonly draining: () => boolean;
}

/**
 * An HTTP Upgrade request (WebSocket, ...) that the layers see like any request: its answer
 * until a 101 (a refusal, a timeout, a non-101 upstream answer) goes through `ctx.response`, which
 * is bound to `socket`; after a 101 the two sockets are spliced (http/upgrade.ts). HTTP/1 only:
 * the stage hands the connection over, so this is the one place a socket reaches the forwarder.
 */
export interface UpgradeRequest {
  /** the client connection, no longer read by the HTTP parser */
  readonly socket: Socket;
  /** bytes the client sent after the request head (the first frames of the new protocol) */
  readonly head: Buffer;
  /** the Upgrade field as sent, for the upstream request */
  readonly protocols: string;
}

/** The forwarder's side of a running exchange (forward.ts): how `ctx.abort` reaches it. */
export interface Exchange {
  abort(err: ProxyError): void;
}

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
  /**
   * Set by the HTTP/1 stage: the target and fields as its parser checked them, before any
   * layer ran, so the upstream encoder checks only what the layers changed (dispatch.ts).
   */
  checkedHead: CheckedHead | undefined = undefined;
  /** the policy route chosen once per request (policy/route.ts); timeouts and retries read it */
  route: RouteFacts | undefined = undefined;
  /** the chosen route's retry state (policy/retry.ts), undefined when it has no `retries` */
  retry: RetryDecider | undefined = undefined;
  /** set by the forwarder while it owns the upstream exchange */
  exchange: Exchange | undefined = undefined;
  /**
   * The SPIFFE identity the upstream proved: set by the mesh when it sends an attempt to a
   * meshed endpoint (its tunnel verifies that identity before a byte of the request goes out),
   * cleared by the forwarder when that attempt failed before it had a connection. So when set
   * at the end of a request, the request reached a peer that proved it. Outbound only.
   */
  upstreamIdentity: string | undefined = undefined;
  /** the endpoint (`ip:port`) the mesh chose for the current attempt; outbound, discovered only */
  upstreamEndpoint: string | undefined = undefined;
  /** set by the forwarder before a retry: the endpoint that failed, for the mesh to pass over */
  avoidEndpoint: string | undefined = undefined;
  /** retries sent upstream for this request (spans and the access log say so) */
  retries = 0;
  /**
   * Whose series the request counts in: the connection's peer (inbound: the mTLS caller), on
   * outbound replaced by the mesh with the chosen endpoint's (resolved once per endpoint).
   * Undefined: the listener's unknown peer.
   */
  peerMetrics: PeerMetrics | undefined;
  /** response body bytes written to the client (upstream's or the proxy's own answer) */
  bytesSent = 0;
  /**
   * Set by the HTTP stage for an Upgrade request: every layer runs as for any request (the
   * request is "done" at the 101 or at the answer that refuses it), then the forwarder tunnels.
   */
  upgrade: UpgradeRequest | undefined = undefined;
  readonly peerAddress: string;
  readonly peerPort: number;
  /** the SPIFFE identity the client proved (inbound over the mTLS tunnel), else undefined */
  readonly peerIdentity: string | undefined;
  readonly destination: Target;
  /** `host:port` of the destination */
  readonly destinationKey: string;
  private listeners: DoneListener[] | undefined = undefined;

  constructor(
    readonly direction: Direction,
    /** the response to the client (exchange.ts): the forwarder and local.ts write it */
    readonly response: DownstreamResponse,
    /** the request body, null when none follows the head */
    readonly body: RequestBody | null,
    readonly method: string,
    /** request target as sent (origin-form path with query); never a metric label */
    readonly path: string,
    /**
     * The request's header fields as sent, flat [name, value, ...] (hop-by-hop ones included):
     * with `method` and `path`, a context is a policy RequestInfo.
     */
    readonly rawHeaders: readonly string[],
    /** '1.1', '1.0' (HTTP/2: '2') */
    readonly httpVersion: string,
    /** performance.now() when the request head was parsed */
    readonly startTime: number,
    conn: ConnectionFacts,
    upstreamHeaders: string[],
    /** a body follows the head (Content-Length > 0 or Transfer-Encoding) */
    readonly hasBody: boolean,
    /** the listener's metrics and drain flag, for answers a layer gives itself */
    readonly local?: LocalAnswerDeps,
  ) {
    this.upstreamHeaders = upstreamHeaders;
    this.peerAddress = conn.peerAddress;
    this.peerPort = conn.peerPort;
    this.peerIdentity = conn.peerIdentity;
    this.destination = conn.destination;
    this.destinationKey = conn.destinationKey;
    this.peerMetrics = conn.peer;
  }

  /** request body bytes received from the client so far (payload, not chunked framing) */
  get bytesReceived(): number {
    const b = this.body;
    return b === null ? 0 : b.bytesReceived;
  }

  /**
   * Ends the request with `err` (504, 429, 403, ...): before the response head, an answer with
   * the error's status and `x-remora-error`; after it, the client connection is cut. A running
   * upstream exchange is aborted either way. No-op once the request is over.
   */
  abort(err: ProxyError): void {
    if (this.endTime !== 0) return;
    const x = this.exchange;
    if (x !== undefined) x.abort(err);
    else answerLocally(this, err);
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
