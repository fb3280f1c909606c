/**
 * mTLS in the engine (DESIGN §3), in one object the engine plugs in at a few points:
 *   identity    certificate at start, renewal, readiness, the expiry gauge
 *   inbound     15006 plaintext refused in strict mode; 15008 tunnel server; the verified peer
 *               identity handed to the app (header) and to whoever asks (`tunnelInfo`)
 *   outbound    a destination that discovery knows picks an endpoint (power of two choices
 *               over in-flight requests); meshed endpoints through the tunnel (HTTP keeps its
 *               L7 path: undici pools whose connections are tunnels), others plainly
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { SecureContext } from 'node:tls';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { PEER_IDENTITY_HEADER } from '../contract.js';
import type { ProxyConfig, Target } from '../config/config.js';
import type { Discovery, Endpoint } from '../discovery/static.js';
import type { Layer } from '../http/layer.js';
import type { Pools } from '../http/pools.js';
import type { Identity } from '../identity/identity.js';
import type { IdentityMaterial } from '../identity/identity.js';
import type { Logger } from '../log.js';
import type { Registry } from '../metrics/registry.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { splice } from '../tcp/relay.js';
import { TunnelError, connectTunnel } from './connect.js';
import { MeshMetrics } from './metrics.js';
import { createTunnelServer, tunnelInfo } from './server.js';
import type { TunnelServer } from './server.js';

export type Relay = (socket: Socket, conn: ConnectionInfo) => void;

export interface MeshOptions {
  readonly mtlsMode: ProxyConfig['mtlsMode'];
  /** absent: no identity (no CA configured); the tunnel then refuses everything */
  readonly identity: Identity | undefined;
  readonly discovery: Discovery | undefined;
  readonly log: Logger;
  readonly registry: Registry;
}

export class Mesh {
  readonly metrics: MeshMetrics;
  private clientContext: SecureContext | undefined;
  private tunnel: TunnelServer | undefined;
  private readonly endpointPools = new Map<string, Pool>();
  /** open opaque tunnels/relays per endpoint, for the balancer */
  private readonly opaqueLoad = new Map<string, number>();

  constructor(private readonly o: MeshOptions) {
    this.metrics = new MeshMetrics(o.registry);
    o.identity?.onChange((m) => this.rotate(m));
  }

  private first: Promise<unknown> = Promise.resolve();

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

  private rotate(m: IdentityMaterial): void {
    // One context for every outbound handshake; swapped whole on rotation.
    this.clientContext = tls.createSecureContext({
      key: m.keyPem,
      cert: m.certPem,
      ca: m.trustBundle,
      minVersion: 'TLSv1.3',
    });
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
   * caller can never set itself (any incoming copy is removed first).
   */
  readonly inboundLayer: Layer = (next) => (ctx) => {
    const h = ctx.upstreamHeaders;
    for (let i = h.length - 2; i >= 0; i -= 2) {
      const name = h[i] as string;
      if (name.length === PEER_IDENTITY_HEADER.length && name.toLowerCase() === PEER_IDENTITY_HEADER)
        h.splice(i, 2);
    }
    const info = tunnelInfo(ctx.req.socket);
    if (info !== undefined) h.push(PEER_IDENTITY_HEADER, info.peerIdentity);
    next(ctx);
  };

  /** Power of two choices over in-flight work: cheap, no shared state, avoids the herd. */
  private pick(eps: readonly Endpoint[]): Endpoint | undefined {
    const n = eps.length;
    if (n <= 1) return eps[0];
    const i = Math.floor(Math.random() * n);
    let j = Math.floor(Math.random() * (n - 1));
    if (j >= i) j += 1;
    const a = eps[i] as Endpoint;
    const b = eps[j] as Endpoint;
    return this.load(a) <= this.load(b) ? a : b;
  }

  private load(e: Endpoint): number {
    const s = this.endpointPools.get(`${e.key} ${e.identity}`)?.stats;
    return (this.opaqueLoad.get(e.key) ?? 0) + (s ? s.running + s.pending : 0);
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

  private tunnelTo(ep: Endpoint): Promise<Socket> {
    const ctx = this.clientContext;
    if (ctx === undefined) return Promise.reject(new TunnelError('error', 'no workload certificate yet'));
    return connectTunnel(
      { ip: ep.ip, tunnelPort: ep.tunnelPort, targetPort: ep.port, identity: ep.identity as string },
      ctx,
    ).catch((err: unknown) => {
      this.tunnelFailed(err, ep);
      throw err;
    });
  }

  private poolFor(ep: Endpoint, base: Pools): Dispatcher {
    if (!ep.meshed) return base.get(ep.key);
    // Keyed by identity too: the same address named with another identity must not reuse a
    // tunnel that was verified for the first one.
    const key = `${ep.key} ${ep.identity}`;
    let p = this.endpointPools.get(key);
    if (p === undefined) {
      p = new Pool(`http://${ep.key}`, {
        pipelining: 1,
        keepAliveTimeout: 4_000,
        headersTimeout: 0,
        bodyTimeout: 0,
        // Each pooled connection is a tunnel: mTLS + CONNECT, then plain HTTP/1.1 inside it,
        // reused across requests by keep-alive.
        connect: (_opts, cb) => {
          this.tunnelTo(ep).then(
            (s) => cb(null, s),
            (err: Error) => cb(err, null),
          );
        },
      });
      this.endpointPools.set(key, p);
    }
    return p;
  }

  private choose(key: string, eps: readonly Endpoint[] | undefined, base: Pools): Dispatcher {
    const ep = eps === undefined ? undefined : this.pick(eps);
    return ep === undefined ? base.get(key) : this.poolFor(ep, base);
  }

  /** Outbound HTTP dispatchers: known services go to a chosen endpoint, the rest as before. */
  outboundPools(base: Pools): { get(key: string): Pick<Dispatcher, 'dispatch'> } {
    const discovery = this.o.discovery;
    if (discovery === undefined) return base;
    return {
      get: (key) => {
        const wait = discovery.pending?.(key);
        if (wait === undefined) return this.choose(key, discovery.lookup(key), base);
        // First request to a destination: wait for discovery's answer before choosing.
        return {
          dispatch: (opts, handler) => {
            void wait.then((eps) => this.choose(key, eps, base).dispatch(opts, handler));
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
      const ep = eps === undefined ? undefined : this.pick(eps);
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
      this.tunnelTo(ep).then(
        (up) => splice(socket, up, () => undefined),
        () => socket.destroy(),
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
    for (const p of this.endpointPools.values()) p.destroy().catch(() => undefined);
    this.endpointPools.clear();
  }
}
