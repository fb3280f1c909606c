/**
 * The engine's metric series (DESIGN §7, names from contract.ts). Label sets stay bounded:
 * direction, protocol, status code, byte flow and workload names/identities, never paths or
 * addresses.
 */
import { METRICS, VERSION } from '../contract.js';
import { Registry } from './registry.js';
import type { Counter, CounterChild, Gauge, GaugeChild, Histogram, HistogramChild } from './registry.js';

export type Direction = 'inbound' | 'outbound';
/** What detection decided: HTTP/1 and HTTP/2 go through L7; the others are relayed as opaque TCP. */
export type Protocol = 'http1' | 'http2' | 'tls' | 'opaque';
/** The `protocol` label of a request series (DESIGN §7): gRPC calls are their own protocol. */
export type RequestProtocol = 'http1' | 'http2' | 'grpc';
/** `grpc_status` of a gRPC call that ended without a status (cut, reset): not a code. */
export const NO_GRPC_STATUS = 'none';

export const DURATION_BUCKETS = Object.freeze([
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/**
 * Source and destination labels (DESIGN §7) on request and connection series. This proxy's own
 * side comes from its config; the other side from the mTLS peer (inbound) or the discovery entry
 * of the chosen endpoint (outbound), `unknown` when neither names it (docs/telemetry.md).
 */
export const WORKLOAD_LABELS = Object.freeze([
  'source_workload',
  'source_namespace',
  'source_identity',
  'destination_service',
  'destination_workload',
  'destination_namespace',
  'destination_identity',
] as const);
export const UNKNOWN_PEER = 'unknown';
/** Every peer label of a peer that came after the cap of distinct peers was reached. */
export const OVERFLOW_PEER = 'overflow';
/** Distinct peers per direction that get their own series (the rest share `overflow`). */
export const DEFAULT_MAX_PEERS = 100;

/** This proxy's own workload (REMORA_WORKLOAD, REMORA_POD_NAMESPACE, its SPIFFE identity). */
export interface SelfWorkload {
  readonly workload?: string | undefined;
  readonly namespace?: string | undefined;
  readonly identity?: string | undefined;
}

/** The other side of a connection or request, as far as it is known. */
export interface Peer {
  readonly service?: string | undefined;
  readonly workload?: string | undefined;
  readonly namespace?: string | undefined;
  readonly identity?: string | undefined;
}

/**
 * The children of one (direction, peer): resolved once per connection (inbound: the mTLS peer)
 * or per upstream endpoint (outbound), so counting a request is one addition.
 */
export interface PeerMetrics {
  readonly opened: Readonly<Record<Protocol, CounterChild>>;
  /** HTTP/1 request duration series for this direction and peer */
  readonly duration: HistogramChild;
  /** HTTP/1 request counter for a status code (cached per code: no lookup on the hot path) */
  requests(status: number): CounterChild;
  /**
   * The same peer's request series under another protocol (`duration` and `requests` of
   * HTTP/2, or of gRPC calls with `grpc_status` = `grpcStatus`, 0..16, -1 for none). Made once
   * per (peer, protocol, status) and kept: the HTTP/2 stage swaps a request's `peerMetrics` to
   * one when the call's status is known, before the request is counted.
   */
  as(protocol: RequestProtocol, grpcStatus: number): PeerMetrics;
}

/** Per-direction children; itself the PeerMetrics of the unknown peer. */
export interface DirectionMetrics extends PeerMetrics {
  readonly active: GaugeChild;
  /** bytes from the client (`received`) and to the client (`sent`) */
  readonly bytesReceived: CounterChild;
  readonly bytesSent: CounterChild;
  /**
   * The children for `peer`: the same object for the same labels; after `maxPeers` distinct
   * peers, the shared `overflow` children (counted in remora_metrics_peer_overflow_total).
   * Call it when a connection starts or an endpoint is first used, never per request.
   */
  peer(peer: Peer): PeerMetrics;
}

export interface ProxyMetricsOptions {
  /** distinct peers per direction with their own series (DEFAULT_MAX_PEERS) */
  readonly maxPeers?: number;
}

export class ProxyMetrics {
  readonly registry: Registry;
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly opened: Counter;
  readonly active: Gauge;
  readonly bytes: Counter;
  readonly degraded: Gauge;
  readonly restarts: Counter;
  readonly peerOverflow: Counter;
  readonly inbound: DirectionMetrics;
  readonly outbound: DirectionMetrics;

  private readonly self: readonly string[];
  private readonly maxPeers: number;

  constructor(registry = new Registry(), self: SelfWorkload = {}, opts: ProxyMetricsOptions = {}) {
    this.registry = registry;
    this.maxPeers = opts.maxPeers ?? DEFAULT_MAX_PEERS;
    this.self = [
      self.workload ?? UNKNOWN_PEER,
      self.namespace ?? UNKNOWN_PEER,
      self.identity ?? UNKNOWN_PEER,
    ];
    this.requests = registry.counter(
      METRICS.requestsTotal,
      'HTTP requests and gRPC calls proxied, by response status (gRPC: and grpc_status).',
      ['direction', 'protocol', 'status_code', 'grpc_status', ...WORKLOAD_LABELS],
    );
    this.duration = registry.histogram(
      METRICS.requestDuration,
      'Time from request received to response complete, in seconds.',
      ['direction', 'protocol', ...WORKLOAD_LABELS],
      DURATION_BUCKETS,
    );
    this.opened = registry.counter(METRICS.tcpOpened, 'TCP connections accepted, by detected protocol.', [
      'direction',
      'protocol',
      ...WORKLOAD_LABELS,
    ]);
    this.active = registry.gauge(METRICS.tcpActive, 'TCP connections currently open on a data listener.', [
      'direction',
    ]);
    this.bytes = registry.counter(
      METRICS.tcpBytes,
      'Bytes relayed on data listeners: received from and sent to the client.',
      ['direction', 'flow'],
    );
    this.degraded = registry.gauge(
      METRICS.proxyDegraded,
      '1 while the supervisor relays at L4 for a missing engine.',
    );
    this.restarts = registry.counter(METRICS.engineRestarts, 'Engine restarts by the supervisor.');
    this.peerOverflow = registry.counter(
      METRICS.peerOverflow,
      'Connections and endpoints whose peer got the shared "overflow" labels: the cap of distinct peers was reached.',
      ['direction'],
    );
    const build = registry.gauge(METRICS.buildInfo, 'Build information; the value is always 1.', [
      'version',
      'node',
    ]);
    build.child(VERSION, process.version).set(1);
    this.degraded.child().set(0);
    this.restarts.child().inc(0);
    this.inbound = this.forDirection('inbound');
    this.outbound = this.forDirection('outbound');
  }

  /** The workload label values: inbound, the peer is the source; outbound, the destination. */
  private labels(d: Direction, p: readonly string[]): string[] {
    // p: service, workload, namespace, identity (the service names only a destination)
    const [service, workload, namespace, identity] = p as [string, string, string, string];
    return d === 'inbound'
      ? [workload, namespace, identity, UNKNOWN_PEER, ...this.self]
      : [...this.self, service, workload, namespace, identity];
  }

  private peerChildren(d: Direction, p: readonly string[]): PeerMetrics {
    const w = this.labels(d, p);
    const opened = {
      http1: this.opened.child(d, 'http1', ...w),
      http2: this.opened.child(d, 'http2', ...w),
      tls: this.opened.child(d, 'tls', ...w),
      opaque: this.opened.child(d, 'opaque', ...w),
    };
    let http2: PeerMetrics | undefined;
    // index: grpc status + 1 (0: none)
    const grpc: (PeerMetrics | undefined)[] = [];
    const as = (protocol: RequestProtocol, grpcStatus: number): PeerMetrics => {
      if (protocol === 'http1') return base;
      if (protocol === 'http2') return (http2 ??= this.variant(d, w, opened, 'http2', '', as));
      const i = grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus + 1 : 0;
      let v = grpc[i];
      if (v === undefined) {
        v = this.variant(d, w, opened, 'grpc', i === 0 ? NO_GRPC_STATUS : String(i - 1), as);
        grpc[i] = v;
      }
      return v;
    };
    const base: PeerMetrics = {
      opened,
      duration: this.duration.child(d, 'http1', ...w),
      requests: statusCache(this.requests, d, 'http1', '', w),
      as,
    };
    return base;
  }

  private variant(
    d: Direction,
    w: readonly string[],
    opened: PeerMetrics['opened'],
    protocol: RequestProtocol,
    grpcStatus: string,
    as: PeerMetrics['as'],
  ): PeerMetrics {
    return {
      opened,
      duration: this.duration.child(d, protocol, ...w),
      requests: statusCache(this.requests, d, protocol, grpcStatus, w),
      as,
    };
  }

  private forDirection(d: Direction): DirectionMetrics {
    const unknown = this.peerChildren(d, [UNKNOWN_PEER, UNKNOWN_PEER, UNKNOWN_PEER, UNKNOWN_PEER]);
    const peers = new Map<string, PeerMetrics>();
    let overflow: PeerMetrics | undefined;
    const overflowed = this.peerOverflow.child(d);
    overflowed.inc(0);
    const max = this.maxPeers;
    const peer = (p: Peer): PeerMetrics => {
      const v = [
        d === 'inbound' ? UNKNOWN_PEER : labelValue(p.service),
        labelValue(p.workload),
        labelValue(p.namespace),
        labelValue(p.identity),
      ];
      if (v[0] === UNKNOWN_PEER && v[1] === UNKNOWN_PEER && v[2] === UNKNOWN_PEER && v[3] === UNKNOWN_PEER)
        return unknown;
      const key = v.join('\u0000');
      const known = peers.get(key);
      if (known !== undefined) return known;
      if (peers.size >= max) {
        overflowed.inc();
        overflow ??= this.peerChildren(d, [OVERFLOW_PEER, OVERFLOW_PEER, OVERFLOW_PEER, OVERFLOW_PEER]);
        return overflow;
      }
      const m = this.peerChildren(d, v);
      peers.set(key, m);
      return m;
    };
    return {
      ...unknown,
      active: this.active.child(d),
      bytesReceived: this.bytes.child(d, 'received'),
      bytesSent: this.bytes.child(d, 'sent'),
      peer,
    };
  }
}

/** A peer field as a label value: `unknown` when absent, never longer than 253 characters. */
function labelValue(v: string | undefined): string {
  return v === undefined || v === '' ? UNKNOWN_PEER : v.length > 253 ? v.slice(0, 253) : v;
}

function statusCache(
  requests: Counter,
  d: Direction,
  protocol: RequestProtocol,
  grpcStatus: string,
  w: readonly string[],
): (status: number) => CounterChild {
  const cache: (CounterChild | undefined)[] = [];
  return (status) => {
    let c = cache[status];
    if (c === undefined) {
      // Any integer can come from an upstream; clamp the label to a valid HTTP code range.
      const code = status >= 100 && status <= 999 ? status : 0;
      c = cache[code] ?? requests.child(d, protocol, String(code), grpcStatus, ...w);
      cache[code] = c;
      if (code === status) cache[status] = c;
    }
    return c;
  };
}
