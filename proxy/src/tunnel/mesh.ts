/**
 * mTLS in the engine (DESIGN §3), in one object the engine plugs in at a few points:
 *   identity    certificate at start, renewal, readiness, the expiry gauge
 *   inbound     15006 plaintext refused in strict mode; 15008 tunnel server; the verified peer
 *               identity handed to the app (header) and to whoever asks (`tunnelInfo`)
 *   outbound    a destination that discovery knows picks an endpoint (power of two choices
 *               over in-flight requests); meshed endpoints through the tunnel (HTTP keeps its
 *               L7 path: client pools whose connections are tunnels), others plainly; under
 *               an outbound policy section, circuit breaking and outlier ejection
 *               (policy/breaker.ts, policy/outlier.ts, docs/circuit-breaking.md)
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { SecureContext } from 'node:tls';
import { PEER_IDENTITY_HEADER } from '../contract.js';
import type { ProxyConfig, Target } from '../config/config.js';
import type { Discovery, Endpoint } from '../discovery/static.js';
import type { DispatchHandler, DispatchOptions, Dispatcher } from '../http/dispatch.js';
import type { Layer, RequestContext } from '../http/layer.js';
import type { DispatcherSource, Pools } from '../http/pools.js';
import type { SlabReader } from '../http1/readslab.js';
import { H2Origin } from '../http2/client.js';
import type { Identity } from '../identity/identity.js';
import { tunnelContextOptions } from '../identity/identity.js';
import type { IdentityMaterial } from '../identity/identity.js';
import type { Logger } from '../log.js';
import { endpointPeer, servicePeer } from '../metrics/peer.js';
import type { DirectionMetrics, PeerMetrics } from '../metrics/proxy.js';
import type { Registry } from '../metrics/registry.js';
import { BreakerCounters, guardedDispatch, portOf } from '../policy/breaker.js';
import type { InFlight, PoolSlot } from '../policy/breaker.js';
import { PolicyMetrics } from '../policy/metrics.js';
import { OutlierGroup, outlierSettings } from '../policy/outlier.js';
import type { CompiledOutbound, CompiledPolicy, PolicySource } from '../policy/types.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { splice } from '../tcp/relay.js';
import { TunnelError, connectTunnel } from './connect.js';
import { MeshMetrics } from './metrics.js';
import { OrigProtoPool, upgradable } from './origproto.js';
import { createTunnelServer, tunnelInfo } from './server.js';
import type { TunnelServer } from './server.js';

export type Relay = (socket: Socket, conn: ConnectionInfo) => void;

/** The outbound dispatchers the forwarder gets: like the pools', plus the request's context. */
export interface MeshDispatchers extends DispatcherSource {
  get(key: string, ctx?: RequestContext): Dispatcher;
}

/**
 * A known service under an outbound policy section: its in-flight count (maxRequests), its
 * outlier detection, and itself as the dispatcher the forwarder gets (one object per service,
 * so a request allocates no dispatcher, only the breaker's handler wrapper).
 */
class Service implements InFlight, Dispatcher {
  inFlight = 0;
  policy: CompiledPolicy | undefined = undefined;
  section: CompiledOutbound | undefined = undefined;
  outliers: OutlierGroup | undefined = undefined;
  /** the latest discovery answer and base pools, set by the choice just before dispatch */
  eps: readonly Endpoint[] = [];
  base: Pools | undefined = undefined;
  /** the request being dispatched (set with `eps`, taken by the dispatch that follows) */
  ctx: RequestContext | undefined = undefined;

  constructor(
    readonly key: string,
    private readonly mesh: Mesh,
  ) {}

  dispatch(opts: DispatchOptions, handler: DispatchHandler): boolean {
    return this.mesh.dispatchService(this, opts, handler);
  }
}

export interface MeshOptions {
  readonly mtlsMode: ProxyConfig['mtlsMode'];
  /** absent: no identity (no CA configured); the tunnel then refuses everything */
  readonly identity: Identity | undefined;
  readonly discovery: Discovery | undefined;
  readonly log: Logger;
  readonly registry: Registry;
  /**
   * HTTP/1.1 requests to meshed endpoints ride the endpoint's HTTP/2 session in the tunnel
   * (REMORA_MESH_HTTP1_OVER_H2, tunnel/origproto.ts); false: pooled HTTP/1.1 tunnels.
   */
  readonly http1OverH2?: boolean;
}

export class Mesh {
  readonly metrics: MeshMetrics;
  private clientContext: SecureContext | undefined;
  private tunnel: TunnelServer | undefined;
  private readonly endpointPools = new Map<string, PoolSlot>();
  /** open opaque tunnels/relays per endpoint, for the balancer */
  private readonly opaqueLoad = new Map<string, number>();
  private policy: PolicySource | undefined = undefined;
  private counters: BreakerCounters | undefined = undefined;
  private policyMetrics: PolicyMetrics | undefined = undefined;
  /** services the policy was asked about (bounded by discovery's services) */
  private readonly services = new Map<string, Service>();
  /** outbound series per endpoint and per endpoint list (the destination labels), see usePeerMetrics */
  private outboundMetrics: DirectionMetrics | undefined = undefined;
  private readonly endpointSeries = new WeakMap<object, PeerMetrics>();

  constructor(private readonly o: MeshOptions) {
    this.metrics = new MeshMetrics(o.registry);
    o.identity?.onChange((m) => this.rotate(m));
  }

  private first: Promise<unknown> = Promise.resolve();

  /** Outbound requests and connections count in the series of the destination discovery names. */
  usePeerMetrics(outbound: DirectionMetrics): void {
    this.outboundMetrics = outbound;
  }

  /** The workload discovery maps a caller's identity to (inbound source label), if it knows. */
  readonly workloadOf = (identity: string): string | undefined => this.o.discovery?.workloadOf?.(identity);

  /** An outbound connection's series: the service's labels, before an endpoint is chosen. */
  destinationSeries(key: string): PeerMetrics | undefined {
    const m = this.outboundMetrics;
    const eps = m === undefined ? undefined : this.o.discovery?.lookup(key);
    if (m === undefined || eps === undefined || eps.length === 0) return m;
    let s = this.endpointSeries.get(eps);
    if (s === undefined) {
      s = m.peer(servicePeer(eps));
      this.endpointSeries.set(eps, s);
    }
    return s;
  }

  /** A request's series once `ep` was chosen: resolved once per endpoint object. */
  private noteEndpoint(ctx: RequestContext, ep: Endpoint): void {
    ctx.upstreamIdentity = ep.identity;
    ctx.upstreamEndpoint = ep.key;
    const m = this.outboundMetrics;
    if (m === undefined) return;
    let s = this.endpointSeries.get(ep);
    if (s === undefined) {
      s = m.peer(endpointPeer(ep));
      this.endpointSeries.set(ep, s);
    }
    ctx.peerMetrics = s;
  }

  /** Starts fetching the certificate; readiness waits for it. */
  start(): void {
    if (this.o.identity) this.first = this.o.identity.start();
  }

  /** Settles at the first certificate (at once without a CA). */
  async whenReady(): Promise<void> {
    await this.first;
  }

  get ready(): boolean {
    return this.o.identity === undefined || this.o.identity.ready;
  }

  get identity(): string | undefined {
    return this.o.identity?.current?.identity;
  }

  /** The certificate source, for the other injector streams (policy) to authenticate with. */
  get workloadIdentity(): Identity | undefined {
    return this.o.identity;
  }

  private rotate(m: IdentityMaterial): void {
    // One context for every outbound handshake; swapped whole on rotation.
    this.clientContext = tls.createSecureContext(tunnelContextOptions(m));
    this.tunnel?.setIdentity(m);
    this.metrics.certExpiry.child().set(Math.floor(m.notAfter / 1000));
  }

  /** 15006: plaintext is welcome in permissive mode and refused in strict mode. */
  guardInbound(accept: (s: Socket) => void): (s: Socket) => void {
    if (this.o.mtlsMode !== 'strict') return accept;
    const denied = this.metrics.denials.child('inbound', 'plaintext_in_strict_mode');
    return (s) => {
      denied.inc();
      this.o.log.warn(
        { event: 'plaintext_refused', direction: 'inbound', peer: `${s.remoteAddress}:${s.remotePort}` },
        'plaintext connection refused: strict mTLS',
      );
      s.destroy();
    };
  }

  /** 15008: TLS and CONNECT first, then the inbound stack's accept. */
  tunnelAccept(stackAccept: (s: Socket) => void): (s: Socket) => void {
    this.tunnel = createTunnelServer({ log: this.o.log, metrics: this.metrics, accept: stackAccept });
    const m = this.o.identity?.current;
    if (m) this.tunnel.setIdentity(m);
    return this.tunnel.accept;
  }

  /** Where a tunnelled connection goes: the CONNECT target. */
  static tunnelDestination(socket: Socket): Target | undefined {
    return tunnelInfo(socket)?.target;
  }

  /**
   * Inbound HTTP layer: the app learns the caller's verified identity from one header, which a
   * caller can never set itself: the HTTP stage's header filter dropped every spelling of it
   * from every request before any layer ran (http/headers.ts, isPeerIdentityHeader).
   */
  readonly inboundLayer: Layer = (next) => (ctx) => {
    const identity = ctx.peerIdentity;
    if (identity !== undefined) ctx.upstreamHeaders.push(PEER_IDENTITY_HEADER, identity);
    next(ctx);
  };

  /**
   * Puts outbound choices under `policy`'s outbound sections: circuit breakers and outlier
   * detection of known services (counted in the registry's PolicyMetrics).
   */
  usePolicy(policy: PolicySource): void {
    this.policy = policy;
    this.policyMetrics = PolicyMetrics.of(this.o.registry);
    this.counters = new BreakerCounters(this.policyMetrics);
  }

  /** The service's breaker state, its section looked up again when the policy changed. */
  private service(key: string, cur: CompiledPolicy): Service {
    let svc = this.services.get(key);
    if (svc === undefined) {
      svc = new Service(key, this);
      this.services.set(key, svc);
    }
    if (svc.policy !== cur) {
      svc.policy = cur;
      svc.section = cur.outbound(key, portOf(key));
      const od = svc.section?.outlierDetection;
      if (od !== undefined) {
        svc.outliers ??= new OutlierGroup(key, {
          metrics: this.policyMetrics as PolicyMetrics,
          log: this.o.log,
        });
        svc.outliers.settings = outlierSettings(od);
      }
    }
    return svc;
  }

  /** @internal Service.dispatch: choose an endpoint the breaker and outlier detection allow. */
  dispatchService(svc: Service, opts: DispatchOptions, handler: DispatchHandler): boolean {
    const section = svc.section;
    const cb = section?.circuitBreaker;
    const group = section?.outlierDetection !== undefined ? svc.outliers : undefined;
    const connections = cb?.maxConnections;
    const ctx = svc.ctx;
    const ep = this.pick(
      passOver(group === undefined ? svc.eps : group.available(svc.eps), ctx),
      connections,
    ) as Endpoint;
    if (ctx !== undefined) {
      svc.ctx = undefined;
      this.noteEndpoint(ctx, ep);
    }
    const slot = this.poolFor(ep, svc.base as Pools, connections, ctx);
    // Only a connection limit: nothing to count per request.
    if (group === undefined && cb?.maxRequests === undefined && cb?.maxPendingRequests === undefined)
      return slot.pool.dispatch(opts, handler);
    return guardedDispatch(
      svc.key,
      svc,
      cb,
      slot,
      opts,
      handler,
      this.counters as BreakerCounters,
      group?.health(ep.key),
    );
  }

  /** Power of two choices over in-flight work: cheap, no shared state, avoids the herd. */
  private pick(eps: readonly Endpoint[], connections?: number): Endpoint | undefined {
    const n = eps.length;
    if (n <= 1) return eps[0];
    const i = Math.floor(Math.random() * n);
    let j = Math.floor(Math.random() * (n - 1));
    if (j >= i) j += 1;
    const a = eps[i] as Endpoint;
    const b = eps[j] as Endpoint;
    return this.load(a, connections) <= this.load(b, connections) ? a : b;
  }

  private load(e: Endpoint, connections: number | undefined): number {
    const key = Mesh.poolKey(e, connections);
    // The HTTP/1.1 tunnels and the HTTP/2 session (shared by HTTP/1.1 requests over it) both count.
    const s = this.endpointPools.get(key)?.pool.stats;
    const s2 = this.endpointPools.get(`${key} h2`)?.pool.stats;
    return (
      (this.opaqueLoad.get(e.key) ?? 0) + (s ? s.running + s.pending : 0) + (s2 ? s2.running + s2.pending : 0)
    );
  }

  private tunnelFailed(err: unknown, ep: Endpoint): void {
    const reason = err instanceof TunnelError ? err.reason : 'error';
    this.metrics.failed('outbound', reason);
    this.o.log.warn(
      {
        event: 'tls_handshake_failed',
        direction: 'outbound',
        reason,
        endpoint: ep.key,
        expected: ep.identity,
        detail: (err as Error).message,
      },
      `mesh tunnel to ${ep.key} failed: ${(err as Error).message}`,
    );
  }

  /** `reader`: an HTTP/1.1 client connection's reads (connect.ts). */
  private tunnelTo(ep: Endpoint, reader?: SlabReader): Promise<Socket> {
    const ctx = this.clientContext;
    if (ctx === undefined) return Promise.reject(new TunnelError('error', 'no workload certificate yet'));
    return connectTunnel(
      { ip: ep.ip, tunnelPort: ep.tunnelPort, targetPort: ep.port, identity: ep.identity as string },
      ctx,
      undefined,
      reader,
    ).catch((err: unknown) => {
      this.tunnelFailed(err, ep);
      throw err;
    });
  }

  /** Where an endpoint's tunnel pool with this connection limit is kept. */
  private static poolKey(ep: Endpoint, connections: number | undefined): string {
    // Keyed by identity too: the same address named with another identity must not reuse a
    // tunnel that was verified for the first one. Keyed by the limit as in Pools (pools.ts).
    return connections === undefined
      ? `${ep.key} ${ep.identity}`
      : `${ep.key} ${ep.identity} c=${connections}`;
  }

  /**
   * The endpoint's pool with at most `connections` connections (undefined: unlimited) for the
   * request `ctx`: HTTP/2 clients' calls and, with `http1OverH2`, upgradable HTTP/1.1 requests
   * share the endpoint's one HTTP/2 session; the rest take pooled HTTP/1.1 tunnels.
   */
  private poolFor(
    ep: Endpoint,
    base: Pools,
    connections: number | undefined,
    ctx?: RequestContext,
  ): PoolSlot {
    if (!ep.meshed) return base.slot(ep.key, connections);
    if (base.http2) return this.h2Session(ep, connections);
    const key = Mesh.poolKey(ep, connections);
    if (this.o.http1OverH2 === true && upgradable(ctx)) {
      const okey = `${key} o`;
      let o = this.endpointPools.get(okey);
      if (o === undefined) {
        o = { pool: new OrigProtoPool(this.h2Session(ep, connections).pool), connections, pending: 0 };
        this.endpointPools.set(okey, o);
      }
      return o;
    }
    let p = this.endpointPools.get(key);
    if (p === undefined) {
      // Each pooled connection is a tunnel: mTLS + CONNECT, then plain HTTP/1.1 inside it,
      // reused across requests by keep-alive.
      const pool = base.create(ep.key, connections, (done, reader) => {
        this.tunnelTo(ep, reader).then(
          (s) => done(null, s, reader !== undefined),
          (err: Error) => done(err),
        );
      });
      p = { pool, connections, pending: 0 };
      this.endpointPools.set(key, p);
    }
    return p;
  }

  /**
   * HTTP/2 inside the tunnel: one multiplexed session per peer proxy and target port (its
   * inbound side detects the preface and serves it with its own HTTP/2 stage).
   */
  private h2Session(ep: Endpoint, connections: number | undefined): PoolSlot {
    const key = `${Mesh.poolKey(ep, connections)} h2`;
    let p = this.endpointPools.get(key);
    if (p === undefined) {
      const pool = new H2Origin(ep.key, {
        connectTimeout: 10_000,
        idleTimeout: 60_000,
        connect: () => this.tunnelTo(ep),
      });
      p = { pool, connections, pending: 0 };
      this.endpointPools.set(key, p);
    }
    return p;
  }

  /**
   * The dispatcher for one request (attempt) to `key`. The chosen endpoint's identity goes on
   * `ctx` (undefined for a plain one), where telemetry reads it once the request is over.
   */
  private choose(
    key: string,
    eps: readonly Endpoint[] | undefined,
    base: Pools,
    ctx: RequestContext | undefined,
  ): Dispatcher {
    if (eps === undefined || eps.length === 0) {
      if (ctx !== undefined) ctx.upstreamIdentity = undefined;
      return base.outbound.get(key);
    }
    // No policy, or none for this service: as cheap as before, no wrapper.
    const cur = this.policy?.current;
    const svc = cur === undefined ? undefined : this.service(key, cur);
    const section = svc?.section;
    if (
      svc === undefined ||
      section === undefined ||
      (section.circuitBreaker ?? section.outlierDetection) === undefined
    ) {
      const ep = this.pick(passOver(eps, ctx)) as Endpoint;
      if (ctx !== undefined) this.noteEndpoint(ctx, ep);
      return this.poolFor(ep, base, undefined, ctx).pool;
    }
    svc.eps = eps;
    svc.base = base;
    svc.ctx = ctx;
    return svc;
  }

  /**
   * Outbound HTTP dispatchers: known services go to a chosen endpoint, the rest to the plain
   * destination (`base.outbound`, its own circuit breaker). The forwarder passes the request's
   * context, on which the choice notes the endpoint's identity.
   */
  outboundPools(base: Pools): MeshDispatchers {
    const discovery = this.o.discovery;
    if (discovery === undefined) return base.outbound;
    return {
      get: (key, ctx) => {
        const wait = discovery.pending?.(key);
        if (wait === undefined) return this.choose(key, discovery.lookup(key), base, ctx);
        // First request to a destination: wait for discovery's answer before choosing.
        return {
          dispatch: (opts, handler) => {
            void wait.then((eps) => this.choose(key, eps, base, ctx).dispatch(opts, handler));
            return true;
          },
        };
      },
    };
  }

  /** Outbound opaque relay: through the tunnel for a meshed endpoint, else plainly. */
  outboundRelay(fallback: Relay): Relay {
    const discovery = this.o.discovery;
    if (discovery === undefined) return fallback;
    const route = (socket: Socket, conn: ConnectionInfo, eps: readonly Endpoint[] | undefined): void => {
      const cur = eps === undefined ? undefined : this.policy?.current;
      const svc = cur === undefined ? undefined : this.service(conn.destinationKey, cur);
      const group = svc?.section?.outlierDetection !== undefined ? svc.outliers : undefined;
      const ep = eps === undefined ? undefined : this.pick(group === undefined ? eps : group.available(eps));
      if (ep === undefined) {
        fallback(socket, conn);
        return;
      }
      if (!ep.meshed) {
        fallback(socket, { ...conn, destination: { host: ep.ip, port: ep.port }, destinationKey: ep.key });
        return;
      }
      this.opaqueLoad.set(ep.key, (this.opaqueLoad.get(ep.key) ?? 0) + 1);
      socket.once('close', () => this.opaqueLoad.set(ep.key, (this.opaqueLoad.get(ep.key) ?? 1) - 1));
      socket.pause();
      // Opaque TCP counts connect failures of tunnels (a plain endpoint's connect happens in
      // the fallback relay, out of sight): a failed tunnel is a connect failure, an open one
      // resets the count. A 5xx cannot be seen here.
      const health = group?.health(ep.key);
      this.tunnelTo(ep).then(
        (up) => {
          health?.connectSucceeded();
          splice(socket, up, () => undefined);
        },
        () => {
          health?.failed('connect');
          socket.destroy();
        },
      );
    };
    return (socket, conn) => {
      const wait = discovery.pending?.(conn.destinationKey);
      if (wait === undefined) {
        route(socket, conn, discovery.lookup(conn.destinationKey));
        return;
      }
      socket.pause();
      void wait.then((eps) => (socket.destroyed ? undefined : route(socket, conn, eps)));
    };
  }

  close(): void {
    this.o.identity?.stop();
    this.o.discovery?.close();
    this.tunnel?.close();
    for (const p of this.endpointPools.values()) p.pool.destroy().catch(() => undefined);
    this.endpointPools.clear();
    for (const svc of this.services.values()) svc.outliers?.close();
    this.services.clear();
  }
}

/**
 * A retry's candidates: the endpoints without the one its last attempt failed on
 * (`ctx.avoidEndpoint`, set by the forwarder), unless that leaves none. First attempts pay
 * nothing (no copy).
 */
function passOver(eps: readonly Endpoint[], ctx: RequestContext | undefined): readonly Endpoint[] {
  const avoid = ctx?.avoidEndpoint;
  if (avoid === undefined || eps.length < 2) return eps;
  const out = eps.filter((e) => e.key !== avoid);
  return out.length > 0 ? out : eps;
}
