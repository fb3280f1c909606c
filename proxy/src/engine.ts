/**
 * The engine: every listener with its stack, the control servers, drain. It takes its sockets
 * from outside when they are handed in (a supervisor) and binds the rest itself.
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { inRanges } from './config/config.js';
import type { ProxyConfig, Target } from './config/config.js';
import { ENV, METRICS } from './contract.js';
import { capConnections } from './tcp/cap.js';
import type { Counter } from './metrics/registry.js';
import { adminServer } from './admin/admin.js';
import { healthServer } from './admin/health.js';
import { metricsServer } from './admin/metrics.js';
import type { ControlServer } from './admin/serve.js';
import type { Layer } from './http/layer.js';
import { createCodecStage } from './http/h1server.js';
import { Pools } from './http/pools.js';
import { createHttpStage } from './http/server.js';
import type { HttpStage } from './http/stage.js';
import { createHttp2Stage } from './http2/server.js';
import { downgradeSource } from './tunnel/origproto.js';
import type { Http2Stage } from './http2/server.js';
import { inboundDestination } from './inbound/accept.js';
import { inboundRelay } from './inbound/forward.js';
import { inboundHandler } from './inbound/http.js';
import { appTarget, inboundDelivery } from './inbound/target.js';
import type { InboundDelivery } from './inbound/target.js';
import { openListener } from './listeners.js';
import type { HandedListeners, Listener, ListenerName } from './listeners.js';
import type { Logger } from './log.js';
import { inboundPeer } from './metrics/peer.js';
import { ProxyMetrics } from './metrics/proxy.js';
import type { Direction, DirectionMetrics, PeerMetrics } from './metrics/proxy.js';
import { outboundDestination } from './outbound/accept.js';
import { outboundRelay } from './outbound/forward.js';
import { outboundHandler } from './outbound/http.js';
import { authorizeConnection, authzLayer } from './policy/authz.js';
import type { PolicyHolder } from './policy/holder.js';
import { PolicyMetrics } from './policy/metrics.js';
import { rateLimitLayer } from './policy/ratelimit.js';
import { routeLayer } from './policy/route.js';
import { timeoutLayer } from './policy/timeout.js';
import { routeFor } from './tcp/detect.js';
import { createStack } from './tcp/stack.js';
import type { PortProtocol, Stack } from './tcp/stack.js';
import { Mesh } from './tunnel/mesh.js';
import { tunnelInfo } from './tunnel/server.js';
import type { ConnectionInfo } from './tcp/connection.js';

/** The opaque stage of a listener: relays one connection's bytes to its destination. */
type Relay = (socket: Socket, conn: ConnectionInfo) => void;

/**
 * What policy adds to the stacks, built once per engine: the plaintext (15006) and mTLS (15008)
 * inbound stacks share one set of layers, so stateful ones (a rate limit's buckets) are shared.
 */
interface PolicyParts {
  readonly inbound: {
    readonly authz: Layer;
    readonly rateLimit: Layer;
    readonly route: Layer;
    readonly timeout: Layer;
  };
  readonly outbound: { readonly route: Layer; readonly timeout: Layer };
  /** L4 authorization of an inbound connection that takes the opaque path */
  readonly admit: (socket: Socket, conn: ConnectionInfo) => boolean;
}

export interface EngineOptions {
  readonly config: ProxyConfig;
  readonly log: Logger;
  /** listening sockets handed in from outside; the engine binds the others */
  readonly listeners?: HandedListeners;
  readonly metrics?: ProxyMetrics;
  /**
   * Open the admin, metrics and health servers (default true). A supervised engine leaves them
   * to the supervisor, which keeps them up across engine generations.
   */
  readonly controls?: boolean;
  /** extra HTTP layers per direction, outermost first (telemetry, policy) */
  readonly layers?: {
    readonly inbound?: readonly (Layer | undefined)[];
    readonly outbound?: readonly (Layer | undefined)[];
  };
  /** wraps the opaque TCP relay per direction (telemetry's per-connection access log) */
  readonly wrapRelay?: (direction: Direction, relay: Relay) => Relay;
  /** mTLS (tunnel/mesh.ts): identity, the 15008 listener, strict mode, meshed endpoints */
  readonly mesh?: Mesh;
  /**
   * The policy in force (policy/holder.ts): its layers are composed and the opaque inbound path
   * gated only when it is set, so an engine without policy runs exactly the code it ran before.
   */
  readonly policy?: PolicyHolder;
}

export type EngineState = 'starting' | 'serving' | 'draining' | 'stopped';

/** How often drain looks whether the last connection has gone. */
const DRAIN_POLL_MS = 50;
/** How long a drain only sends `Connection: close` before it closes idle keep-alive connections. */
const IDLE_GRACE_MS = 1000;

export class Engine {
  readonly metrics: ProxyMetrics;
  private readonly config: ProxyConfig;
  private readonly log: Logger;
  private readonly handed: HandedListeners;
  private readonly pools: Pools;
  /** the inbound side's pools: they connect to the pod IP from the passthrough source */
  private inboundPools: Pools;
  /** the HTTP/2 stages' upstream clients (http2/client.ts), outbound and inbound */
  private readonly h2Pools: Pools;
  private inboundH2Pools: Pools;
  private readonly http2Stages: Http2Stage[] = [];
  private delivery: InboundDelivery;
  private readonly httpStages: HttpStage[] = [];
  private readonly stacks: Stack[] = [];
  private readonly controls: ControlServer[] = [];
  private readonly listeners = new Map<ListenerName, Listener>();
  private state: EngineState = 'starting';
  private drainPromise: Promise<void> | undefined;
  private drained!: () => void;
  /** Settles once a drain (from a signal, the admin API or `drain()`) has finished. */
  readonly stopped = new Promise<void>((resolve) => (this.drained = resolve));

  constructor(private readonly opts: EngineOptions) {
    this.config = opts.config;
    this.pools = new Pools({ client: opts.config.upstreamClient });
    const c = opts.config;
    this.delivery = inboundDelivery(c.podIp, c.localhostInboundPorts);
    const { podIp, localAddress } = this.delivery;
    // Separate from the outbound pools: an outbound connection to the pod's own IP must keep
    // taking the inbound path (remora-init captures it), which the passthrough source skips.
    this.inboundPools =
      podIp === undefined || localAddress === undefined
        ? this.pools
        : new Pools({ client: c.upstreamClient, bind: { host: podIp, localAddress } });
    this.h2Pools = new Pools({ http2: true });
    this.inboundH2Pools =
      podIp === undefined || localAddress === undefined
        ? this.h2Pools
        : new Pools({ http2: true, bind: { host: podIp, localAddress } });
    this.log = opts.log;
    this.handed = opts.listeners ?? {};
    this.metrics = opts.metrics ?? new ProxyMetrics();
    if (opts.policy !== undefined) {
      // Circuit breaking and outlier ejection read the same policy (docs/circuit-breaking.md).
      this.pools.usePolicy(opts.policy, PolicyMetrics.of(this.metrics.registry));
      this.h2Pools.usePolicy(opts.policy, PolicyMetrics.of(this.metrics.registry));
      opts.mesh?.usePolicy(opts.policy);
    }
    opts.mesh?.usePeerMetrics(this.metrics.outbound);
  }

  get draining(): boolean {
    return this.state === 'draining';
  }

  get ready(): boolean {
    return this.state === 'serving' && (this.opts.mesh?.ready ?? true) && (this.opts.policy?.ready ?? true);
  }

  private notReadyReason(): string {
    if (this.state !== 'serving') return this.state;
    if (this.opts.mesh?.ready === false) return 'no workload certificate yet';
    if (this.opts.policy?.ready === false) return 'no policy from the control plane yet';
    return this.state;
  }

  /** Opens every listener (data listeners first, health last, so ready means ready). */
  async start(): Promise<void> {
    const c = this.config;
    await this.checkPassthroughSource();
    const isDraining = () => this.state === 'draining';
    const policy = this.policyParts(isDraining);
    const inbound = this.dataStack('inbound', isDraining, policy);
    const outbound = this.dataStack('outbound', isDraining, policy);
    const mesh = this.opts.mesh;
    // Whatever loopback the peer's CONNECT names, the app is reached by the inbound rule.
    const delivery = this.delivery;
    const tunnelDestination = (s: Socket): Target | undefined => {
      const t = Mesh.tunnelDestination(s);
      return t === undefined ? undefined : appTarget(delivery, t.port, t.host === '::1');
    };
    const tunnel = mesh ? this.dataStack('inbound', isDraining, policy, tunnelDestination) : undefined;
    const admin = adminServer({
      config: c,
      state: () => this.view(),
      drain: () => void this.drain(),
    });
    const metrics = metricsServer(this.metrics.registry);
    const health = healthServer(
      () => this.ready,
      () => this.notReadyReason(),
    );
    this.controls.push(admin, metrics, health);
    try {
      const inboundAccept = mesh ? mesh.guardInbound(inbound.accept) : inbound.accept;
      await this.open('inbound', c.inboundHost, c.inboundPort, inboundAccept);
      await this.open('outbound', c.outboundHost, c.outboundPort, outbound.accept);
      // IPv6 twins: served only when handed in (the supervisor binds them where IPv6 exists).
      if (this.handed.inbound6 !== undefined) await this.open('inbound6', '', 0, inboundAccept);
      if (this.handed.outbound6 !== undefined) await this.open('outbound6', '', 0, outbound.accept);
      if (mesh && tunnel) {
        // One TLS server for both families, so a certificate rotation reaches both.
        const tunnelAccept = mesh.tunnelAccept(tunnel.accept);
        await this.open('tunnel', c.tunnelHost, c.tunnelPort, tunnelAccept);
        if (this.handed.tunnel6 !== undefined) await this.open('tunnel6', '', 0, tunnelAccept);
      }
      if (this.opts.controls !== false) {
        await this.open('admin', c.adminHost, c.adminPort, admin.accept);
        await this.open('metrics', c.metricsHost, c.metricsPort, metrics.accept);
        await this.open('health', c.healthHost, c.healthPort, health.accept);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    this.state = 'serving';
    this.log.info({ event: 'listening', listeners: this.addresses() }, 'remora-proxy engine serving');
    this.logDelivery();
  }

  /**
   * The passthrough source must be an address of this host: 127.0.0.6 always is (all of
   * 127.0.0.0/8 is loopback), ::6 only where something put it on lo. Without it no delivery to
   * the pod IP could connect at all, so the engine says so loudly and keeps today's loopback
   * delivery rather than refusing every inbound connection (docs/proxy.md).
   */
  private async checkPassthroughSource(): Promise<void> {
    const { localAddress, localhostPorts } = this.delivery;
    if (localAddress === undefined) return;
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const probe = net.createServer();
      probe.once('error', (e: NodeJS.ErrnoException) => resolve(e));
      probe.listen({ host: localAddress, port: 0 }, () => probe.close(() => resolve(undefined)));
    });
    if (err === undefined) return;
    this.log.error(
      { event: 'inbound_passthrough_unavailable', localAddress, podIp: this.delivery.podIp, err: err.code },
      `cannot use ${localAddress} as the inbound passthrough source: inbound connections go to loopback`,
    );
    if (this.inboundPools !== this.pools) this.inboundPools.destroy();
    this.inboundPools = this.pools;
    if (this.inboundH2Pools !== this.h2Pools) this.inboundH2Pools.destroy();
    this.inboundH2Pools = this.h2Pools;
    this.delivery = inboundDelivery(undefined, [...localhostPorts]);
  }

  /** Where inbound traffic goes; a pod (it has a name) without a pod IP is a misconfiguration. */
  private logDelivery(): void {
    const { podIp, localAddress, localhostPorts } = this.delivery;
    const fields = {
      event: 'inbound_delivery',
      podIp: podIp ?? null,
      localAddress: localAddress ?? null,
      localhostPorts: [...localhostPorts],
    };
    if (podIp !== undefined)
      this.log.info(fields, 'inbound connections go to the pod IP (loopback-only listeners stay private)');
    else if (this.config.podName !== undefined)
      this.log.warn(
        fields,
        `${ENV.podIp} is not set: inbound connections go to 127.0.0.1, where loopback-only listeners are reachable`,
      );
    else this.log.info(fields, `no ${ENV.podIp}: inbound connections go to 127.0.0.1`);
  }

  /**
   * Policy's part of the stacks, outside-in on inbound: authz → rate limit → route timeouts and
   * retries, then the mesh's own layer and the forwarder; outbound: route timeouts and retries.
   * Each layer reads `policy.current` per request, so an accepted update needs no rebuild.
   */
  private policyParts(draining: () => boolean): PolicyParts | undefined {
    const policy = this.opts.policy;
    if (policy === undefined) return undefined;
    const metrics = PolicyMetrics.of(this.metrics.registry);
    const log = this.log;
    const authz = { policy, metrics, log, requests: this.metrics.inbound, draining };
    const authorize = (socket: Socket, conn: ConnectionInfo): boolean =>
      authorizeConnection(
        policy,
        conn.destination.port,
        { identity: tunnelInfo(socket)?.peerIdentity, address: conn.peerAddress },
        metrics,
        log,
      );
    const admitted = new Map<Socket, ConnectionInfo>();
    policy.onChange(() => {
      for (const [socket, conn] of admitted) {
        // Allowed, and the port does not now refuse what is not HTTP (opaque ports stay opaque).
        if (authorize(socket, conn) && !this.nowStrict(conn)) continue;
        admitted.delete(socket);
        socket.destroy();
      }
    });
    const traffic = (direction: Direction) => ({
      route: routeLayer({ policy, direction, metrics, log }),
      timeout: timeoutLayer({ policy, direction, metrics, log }),
    });
    return {
      inbound: {
        authz: authzLayer(authz),
        rateLimit: rateLimitLayer({ policy, direction: 'inbound', metrics, log }),
        ...traffic('inbound'),
      },
      outbound: traffic('outbound'),
      admit: (socket, conn) => {
        if (!authorize(socket, conn)) return false;
        // Opaque connections were authorized once, at their start: keep them, so that an
        // update that now denies them closes them (an HTTP connection is asked per request).
        admitted.set(socket, conn);
        socket.once('close', () => admitted.delete(socket));
        return true;
      },
    };
  }

  /** An update made this inbound connection's port L7-governed (and it is not declared opaque). */
  private nowStrict(conn: ConnectionInfo): boolean {
    const port = conn.destination.port;
    if (inRanges(this.config.opaquePorts, port)) return false;
    return this.opts.policy?.current?.inbound(port)?.l7 === true;
  }

  private dataStack(
    direction: 'inbound' | 'outbound',
    draining: () => boolean,
    policy: PolicyParts | undefined,
    tunnelDestination?: (s: Socket) => Target | undefined,
  ): Stack {
    const c = this.config;
    const m = direction === 'inbound' ? this.metrics.inbound : this.metrics.outbound;
    const inbound = direction === 'inbound';
    const mesh = this.opts.mesh;
    // Outbound under a policy goes through the breaker's view of the pools; without one, the
    // plain pools as before. Inbound forwarding never goes through a breaker.
    const pools = inbound
      ? this.inboundPools
      : mesh
        ? mesh.outboundPools(this.pools)
        : this.opts.policy !== undefined
          ? this.pools.outbound
          : this.pools;
    // The HTTP/2 stage's forwarder: the same choice over the HTTP/2 pools (gRPC goes upstream
    // as HTTP/2; the mesh's endpoint choice spreads its calls per request).
    // Inbound, a request a peer proxy carried over HTTP/2 for an HTTP/1.1 client goes to the
    // app over HTTP/1.1 (tunnel/origproto.ts).
    const h2Pools = inbound
      ? downgradeSource(this.inboundPools, this.inboundH2Pools)
      : mesh
        ? mesh.outboundPools(this.h2Pools)
        : this.opts.policy !== undefined
          ? this.h2Pools.outbound
          : this.h2Pools;
    const deps = { pools, metrics: m, log: this.log, draining };
    const h2Deps = { pools: h2Pools, metrics: m, log: this.log, draining };
    // The layers by name (http/order.ts); each listener composes its own in one place. The
    // HTTP/2 stage runs the very same layer objects (shared state: a rate limit's buckets).
    const telemetry = (inbound ? this.opts.layers?.inbound : this.opts.layers?.outbound) ?? [];
    const named = inbound
      ? { telemetry, ...policy?.inbound, meshIdentity: mesh?.inboundLayer }
      : { telemetry, ...policy?.outbound };
    const handler = inbound ? inboundHandler(deps, named) : outboundHandler(deps, named);
    const h2Handler = inbound ? inboundHandler(h2Deps, named) : outboundHandler(h2Deps, named);
    const http2 = createHttp2Stage({
      direction,
      handler: h2Handler,
      metrics: m,
      log: this.log,
      maxHeaderBytes: c.maxHeaderBytes,
      maxHeaders: c.maxHeaders,
      draining,
    });
    this.http2Stages.push(http2);
    // The HTTP/1.1 server stage: the project's codec or node:http (REMORA_HTTP_SERVER).
    const http = (c.httpServer === 'codec' ? createCodecStage : createHttpStage)({
      direction,
      handler,
      metrics: m,
      log: this.log,
      maxHeaderBytes: c.maxHeaderBytes,
      maxHeaders: c.maxHeaders,
      requestHeadTimeoutMs: c.requestHeadTimeoutMs,
      draining,
    });
    this.httpStages.push(http);
    const target = inbound ? c.inboundTarget : c.outboundTarget;
    const stack = createStack({
      protocolOf: this.protocolOf(direction),
      direction,
      metrics: m,
      log: this.log,
      detectTimeoutMs: c.detectTimeoutMs,
      destination:
        tunnelDestination ??
        (inbound
          ? (s: Socket) => inboundDestination(s, target, this.delivery)
          : (s: Socket) => outboundDestination(s, target)),
      // detect: the same on both sides (inbound/ and outbound/ hold only real differences)
      route: routeFor,
      http,
      http2,
      ...(inbound && policy !== undefined ? { admit: policy.admit } : {}),
      ...(mesh ? { peer: this.peerSeries(m, inbound, mesh) } : {}),
      ...(mesh && inbound ? { identity: (s: Socket) => tunnelInfo(s)?.peerIdentity } : {}),
      relay: this.relay(
        direction,
        inbound
          ? inboundRelay(this.log)
          : mesh
            ? mesh.outboundRelay(outboundRelay(this.log))
            : outboundRelay(this.log),
      ),
    });
    this.stacks.push(stack);
    return stack;
  }

  /**
   * What a connection's port speaks (docs/proxy.md "Protocol detection"): declared opaque or
   * HTTP by config (the pod's annotation), else `http` when the policy in force governs the
   * port at L7 (an authorization rule with request conditions, a rate limit, a route), else
   * `detect`. Declared opaque wins over policy: the pod says detection would break the port.
   */
  private protocolOf(direction: 'inbound' | 'outbound'): (conn: ConnectionInfo) => PortProtocol {
    const c = this.config;
    const inbound = direction === 'inbound';
    const declared = new Uint8Array(65536);
    for (const [from, to] of inbound ? c.httpPorts : c.outboundHttpPorts) declared.fill(2, from, to + 1);
    for (const [from, to] of inbound ? c.opaquePorts : c.outboundOpaquePorts) declared.fill(1, from, to + 1);
    const policy = this.opts.policy;
    return (conn) => {
      const port = conn.destination.port;
      const d = declared[port];
      if (d === 1) return 'opaque';
      if (d === 2) return 'http';
      const p = policy?.current;
      if (p === undefined) return 'detect';
      const governed = inbound ? p.inbound(port)?.l7 : p.outbound(conn.destinationKey, port)?.l7;
      return governed === true ? 'http' : 'detect';
    };
  }

  /**
   * Whose series a connection counts in (DESIGN §7): inbound, the identity the mTLS caller
   * proved (plaintext callers stay `unknown`); outbound, the destination service discovery
   * names. Once per connection; requests on it read the result from their context.
   */
  private peerSeries(
    m: DirectionMetrics,
    inbound: boolean,
    mesh: Mesh,
  ): (socket: Socket, destinationKey: string) => PeerMetrics {
    if (!inbound) return (_socket, key) => mesh.destinationSeries(key) ?? m;
    return (socket) => {
      const identity = tunnelInfo(socket)?.peerIdentity;
      return identity === undefined ? m : m.peer(inboundPeer(identity, mesh.workloadOf));
    };
  }

  private relay(direction: Direction, relay: Relay): Relay {
    return this.opts.wrapRelay === undefined ? relay : this.opts.wrapRelay(direction, relay);
  }

  private async open(
    name: ListenerName,
    host: string,
    port: number,
    accept: (s: Socket) => void,
  ): Promise<void> {
    const reg = this.metrics.registry;
    const counter =
      (reg.get(METRICS.connectionsOverCap) as Counter | undefined) ??
      reg.counter(METRICS.connectionsOverCap, 'Connections closed at accept: the listener was at its cap.', [
        'listener',
      ]);
    const overCap = counter.child(name);
    const capped = capConnections(name, this.config.maxConnections, accept, overCap, this.log);
    const l = await openListener({ name, host, port, accept: capped, handed: this.handed[name] });
    this.listeners.set(name, l);
  }

  /** The engine's state for /config: its own admin listener's, or the supervisor's. */
  view(): Record<string, unknown> {
    return {
      state: this.state,
      listeners: this.addresses(),
      upstreamConnections:
        this.pools.connected() + (this.inboundPools !== this.pools ? this.inboundPools.connected() : 0),
      policy: this.opts.policy?.status() ?? null,
    };
  }

  /** Where each listener is bound (useful with port 0). */
  addresses(): Partial<Record<ListenerName, AddressInfo>> {
    const out: Partial<Record<ListenerName, AddressInfo>> = {};
    for (const [name, l] of this.listeners) out[name] = l.address();
    return out;
  }

  /** Open client connections on the data listeners. */
  activeConnections(): number {
    let n = 0;
    for (const s of this.stacks) n += s.connections.size;
    return n;
  }

  /**
   * Graceful drain (DESIGN §4): readiness turns 503, the data listeners stop accepting,
   * responses carry `Connection: close`, idle keep-alive connections are closed, in-flight
   * requests finish. Resolves when no client connection is left or after `drainSeconds`, when
   * the rest are cut; then everything is closed.
   */
  drain(): Promise<void> {
    this.drainPromise ??= this.doDrain();
    return this.drainPromise;
  }

  private async doDrain(): Promise<void> {
    this.state = 'draining';
    const started = Date.now();
    // HTTP/2: GOAWAY at once; streams in flight finish, no new one starts (their clients open
    // a new connection elsewhere: the next engine, another pod).
    for (const h of this.http2Stages) h.closeIdle();
    this.log.info(
      { event: 'drain_start', connections: this.activeConnections(), boundSeconds: this.config.drainSeconds },
      'draining',
    );
    await Promise.all(
      ['inbound', 'outbound', 'tunnel', 'inbound6', 'outbound6', 'tunnel6'].map((n) =>
        this.listeners.get(n as ListenerName)?.stopAccepting(),
      ),
    );
    const deadline = started + this.config.drainSeconds * 1000;
    // Closing an idle keep-alive connection races a client that is just sending on it (it gets
    // a reset). For a while, only answer with `Connection: close`: busy clients leave cleanly,
    // and what is still idle afterwards is most likely idle for real.
    const closeIdleFrom = started + Math.min(IDLE_GRACE_MS, (this.config.drainSeconds * 1000) / 2);
    while (this.activeConnections() > 0 && Date.now() < deadline) {
      // Connections that finished their last response since the previous round are idle now.
      if (Date.now() >= closeIdleFrom) for (const h of this.httpStages) h.closeIdle();
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
    const left = this.activeConnections();
    if (left > 0)
      this.log.warn({ event: 'drain_timeout', connections: left }, 'drain bound reached: closing the rest');
    else this.log.info({ event: 'drain_done', ms: Date.now() - started }, 'drained');
    await this.close();
    this.drained();
  }

  /** Closes everything at once (connections included). */
  async close(): Promise<void> {
    this.state = 'stopped';
    for (const s of this.stacks) for (const sock of s.connections) sock.destroy();
    for (const h of this.httpStages) h.close();
    for (const h of this.http2Stages) h.close();
    for (const c of this.controls) c.close();
    await Promise.all([...this.listeners.values()].map((l) => l.stopAccepting()));
    this.pools.destroy();
    if (this.inboundPools !== this.pools) this.inboundPools.destroy();
    this.h2Pools.destroy();
    if (this.inboundH2Pools !== this.h2Pools) this.inboundH2Pools.destroy();
    this.opts.mesh?.close();
  }
}
