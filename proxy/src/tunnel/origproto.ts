/**
 * HTTP/1.1 between proxies over the shared HTTP/2 connection (issue 12 item 5; Linkerd's
 * transparent upgrade, `l5d-orig-proto`). Behind REMORA_MESH_HTTP1_OVER_H2.
 *
 * Near side (outbound, tunnel/mesh.ts `poolFor`): an HTTP/1.1 request to a meshed endpoint goes
 * as one stream on the endpoint's HTTP/2 session inside the mTLS tunnel, the very session that
 * carries HTTP/2 clients' calls, with `x-remora-orig-proto: HTTP/1.1` added. Hop-by-hop fields
 * (Connection and what it names, Keep-Alive, Transfer-Encoding, TE, Upgrade, Proxy-*) never
 * reach it: the HTTP stage's filter dropped them, and the framing is HTTP/2's own. Requests that
 * cannot ride a stream stay on the pooled HTTP/1.1 tunnels: an Upgrade (WebSocket; a 101 hands
 * over the connection, which a stream cannot), CONNECT, `OPTIONS *`, and HTTP/1.0 (Linkerd
 * carries it as `HTTP/1.0`; here it is rare enough to keep the one value). An absolute-form
 * target was rewritten to origin-form by the HTTP stage, as for the tunnel path, so it rides too
 * (Linkerd's `; absolute-form` suffix is not needed).
 *
 * Far side (inbound, http2/server.ts): a stream carrying the header, from a peer that proved its
 * identity through the tunnel, is an HTTP/1.1 request (`ctx.httpVersion` '1.1'): the same layers
 * run (authorization, rate limit, routes, the identity header), and `downgradeSource` sends it
 * to the app through the HTTP/1.1 pools. The header is dropped from every request at every
 * listener (http/headers.ts), so an app can neither send it through its own proxy nor to a
 * peer's plaintext port to make a proxy speak HTTP/1.1 where it would not.
 */
import { ORIG_PROTO_HEADER } from '../contract.js';
import type {
  DispatchHandler,
  DispatchOptions,
  Dispatcher,
  PoolStats,
  UpstreamPool,
} from '../http/dispatch.js';
import type { RequestContext } from '../http/layer.js';

/** The one value the near side sends: the request came from an HTTP/1.1 client. */
export const ORIG_PROTO_HTTP11 = 'HTTP/1.1';

/** Whether `ctx` may ride an HTTP/2 stream to the peer proxy (see the module comment). */
export function upgradable(ctx: RequestContext | undefined): boolean {
  return (
    ctx !== undefined &&
    ctx.httpVersion === '1.1' &&
    ctx.upgrade === undefined &&
    ctx.method !== 'CONNECT' &&
    ctx.path.charCodeAt(0) === 0x2f // origin-form ('/...'); `OPTIONS *` stays on HTTP/1.1
  );
}

/**
 * The endpoint's HTTP/2 session seen as an HTTP/1.1 pool: every request gets the header. The
 * session (`h2`) is shared with the HTTP/2 clients' pool of the same endpoint; closing this view
 * closes nothing (the mesh owns the session).
 */
export class OrigProtoPool implements UpstreamPool {
  constructor(private readonly h2: UpstreamPool) {}

  get stats(): PoolStats {
    return this.h2.stats;
  }

  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    const headers = opts.headers === null || opts.headers === undefined ? [] : opts.headers.slice();
    headers.push(ORIG_PROTO_HEADER, ORIG_PROTO_HTTP11);
    return this.h2.dispatch(
      { path: opts.path, method: opts.method, headers, body: opts.body ?? null },
      handler,
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  destroy(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The inbound HTTP/2 stage's dispatchers: HTTP/2 to the app, except for a request a peer proxy
 * carried for an HTTP/1.1 client (its version is not '2'), which goes over HTTP/1.1.
 */
export function downgradeSource(
  http1: { get(key: string): Dispatcher },
  http2: { get(key: string): Dispatcher },
): { get(key: string, ctx?: RequestContext): Dispatcher } {
  return {
    get: (key, ctx) => (ctx === undefined || ctx.httpVersion === '2' ? http2.get(key) : http1.get(key)),
  };
}
