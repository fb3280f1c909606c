/**
 * The engine's metric series (DESIGN §7, names from contract.ts). Label sets stay bounded:
 * direction, protocol, status code, byte flow and workload names/identities, never paths or
 * addresses.
 */
import { METRICS, VERSION } from '../contract.js';
import { Registry } from './registry.js';
import type { Counter, CounterChild, Gauge, GaugeChild, Histogram, HistogramChild } from './registry.js';

export type Direction = 'inbound' | 'outbound';
/** What detection decided: HTTP/1 goes through L7; the others are relayed as opaque TCP. */
export type Protocol = 'http1' | 'http2' | 'tls' | 'opaque';

export const DURATION_BUCKETS = Object.freeze([
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/**
 * Source and destination labels (DESIGN §7) on request and connection series. This proxy's own
 * side comes from its config; the other side is `unknown` until the peer's identity (mTLS) or
 * the destination service (discovery) names it.
 */
export const WORKLOAD_LABELS = Object.freeze([
  'source_workload',
  'source_namespace',
  'source_identity',
  'destination_workload',
  'destination_namespace',
  'destination_identity',
] as const);
export const UNKNOWN_PEER = 'unknown';

/** This proxy's own workload (REMORA_WORKLOAD, REMORA_POD_NAMESPACE, its SPIFFE identity). */
export interface SelfWorkload {
  readonly workload?: string | undefined;
  readonly namespace?: string | undefined;
  readonly identity?: string | undefined;
}

/** Per-direction children, resolved once so the data path only adds. */
export interface DirectionMetrics {
  readonly active: GaugeChild;
  readonly opened: Readonly<Record<Protocol, CounterChild>>;
  /** bytes from the client (`received`) and to the client (`sent`) */
  readonly bytesReceived: CounterChild;
  readonly bytesSent: CounterChild;
  /** HTTP/1 request duration series for this direction */
  readonly duration: HistogramChild;
  /** HTTP/1 request counter for a status code (cached per code: no lookup on the hot path) */
  requests(status: number): CounterChild;
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
  readonly inbound: DirectionMetrics;
  readonly outbound: DirectionMetrics;

  private readonly self: readonly string[];

  constructor(registry = new Registry(), self: SelfWorkload = {}) {
    this.registry = registry;
    this.self = [
      self.workload ?? UNKNOWN_PEER,
      self.namespace ?? UNKNOWN_PEER,
      self.identity ?? UNKNOWN_PEER,
    ];
    this.requests = registry.counter(METRICS.requestsTotal, 'HTTP requests proxied, by response status.', [
      'direction',
      'protocol',
      'status_code',
      ...WORKLOAD_LABELS,
    ]);
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

  private forDirection(d: Direction): DirectionMetrics {
    // Inbound: the peer called us; outbound: we call the peer.
    const peer = [UNKNOWN_PEER, UNKNOWN_PEER, UNKNOWN_PEER];
    const w = d === 'inbound' ? [...peer, ...this.self] : [...this.self, ...peer];
    return {
      active: this.active.child(d),
      opened: {
        http1: this.opened.child(d, 'http1', ...w),
        http2: this.opened.child(d, 'http2', ...w),
        tls: this.opened.child(d, 'tls', ...w),
        opaque: this.opened.child(d, 'opaque', ...w),
      },
      bytesReceived: this.bytes.child(d, 'received'),
      bytesSent: this.bytes.child(d, 'sent'),
      duration: this.duration.child(d, 'http1', ...w),
      requests: statusCache(this.requests, d, w),
    };
  }
}

function statusCache(
  requests: Counter,
  d: Direction,
  w: readonly string[],
): (status: number) => CounterChild {
  const cache: (CounterChild | undefined)[] = [];
  return (status) => {
    let c = cache[status];
    if (c === undefined) {
      // Any integer can come from an upstream; clamp the label to a valid HTTP code range.
      const code = status >= 100 && status <= 999 ? status : 0;
      c = cache[code] ?? requests.child(d, 'http1', String(code), ...w);
      cache[code] = c;
      if (code === status) cache[status] = c;
    }
    return c;
  };
}
