/**
 * Outlier detection (issue 7, docs/circuit-breaking.md): per endpoint of a destination,
 * consecutive 5xx answers or consecutive connect failures eject it from load balancing for
 * `baseEjectionMs × n` (its n-th ejection in a row, capped), never more than
 * `maxEjectedPercent` of the destination's endpoints at once and never the last one. A returned
 * endpoint is on probation: its next failure ejects it again at once; its next success ends
 * the probation. Any success resets the consecutive counters.
 *
 * One OutlierGroup per destination; the balancer asks `available(endpoints)` and the dispatch
 * wrapper (breaker.ts) reports answers to the chosen endpoint's EndpointHealth.
 */
import type { Logger } from '../log.js';
import type { PolicyMetrics } from './metrics.js';
import type { OutlierDetection } from './types.js';

export type EjectionReason = 'consecutive_5xx' | 'consecutive_connect_failures';

export interface OutlierSettings {
  readonly consecutive5xx: number;
  readonly consecutiveConnectFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectedPercent: number;
}

/** The defaults of types.ts (OutlierDetection). */
export const OUTLIER_DEFAULTS: OutlierSettings = Object.freeze({
  consecutive5xx: 5,
  consecutiveConnectFailures: 3,
  baseEjectionMs: 30_000,
  maxEjectedPercent: 50,
});

/** Longest ejection (Envoy's default max_ejection_time), unless baseEjectionMs is longer. */
export const MAX_EJECTION_MS = 300_000;

export function outlierSettings(o: OutlierDetection): OutlierSettings {
  return Object.freeze({
    consecutive5xx: o.consecutive5xx ?? OUTLIER_DEFAULTS.consecutive5xx,
    consecutiveConnectFailures: o.consecutiveConnectFailures ?? OUTLIER_DEFAULTS.consecutiveConnectFailures,
    baseEjectionMs: o.baseEjectionMs ?? OUTLIER_DEFAULTS.baseEjectionMs,
    maxEjectedPercent: o.maxEjectedPercent ?? OUTLIER_DEFAULTS.maxEjectedPercent,
  });
}

/** How many of `total` endpoints may be out at once: at least one, never all. */
export function maxEjected(total: number, percent: number): number {
  if (percent <= 0 || total <= 1) return 0;
  return Math.min(total - 1, Math.max(1, Math.floor((total * percent) / 100)));
}

export interface OutlierDeps {
  readonly metrics: PolicyMetrics;
  readonly log: Logger;
  /** ms clock (tests may pass their own) */
  readonly now?: () => number;
}

/** What outlier detection knows about one endpoint of one destination. */
export class EndpointHealth {
  fails5xx = 0;
  failsConnect = 0;
  /** ejections in a row (the multiplier of the next one) */
  ejections = 0;
  ejected = false;
  /** back from an ejection and not yet answered well */
  probation = false;
  returnedAt = 0;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly endpoint: string,
    private readonly group: OutlierGroup,
  ) {}

  failed(kind: '5xx' | 'connect'): void {
    this.group.failed(this, kind);
  }

  succeeded(): void {
    this.fails5xx = 0;
    this.failsConnect = 0;
    this.probation = false;
  }

  /** An opaque connection got through: only the connect count learns something. */
  connectSucceeded(): void {
    this.failsConnect = 0;
  }
}

/** The endpoints of one destination under outlier detection. */
export class OutlierGroup {
  /** the destination's outlierDetection, set by the owner whenever the policy changes */
  settings: OutlierSettings = OUTLIER_DEFAULTS;
  /** endpoints the destination has now (set at every choice) */
  total = 0;
  /** endpoints ejected now */
  ejected = 0;
  private readonly endpoints = new Map<string, EndpointHealth>();
  private readonly now: () => number;

  constructor(
    readonly destination: string,
    private readonly deps: OutlierDeps,
  ) {
    this.now = deps.now ?? Date.now;
  }

  health(endpoint: string): EndpointHealth {
    let h = this.endpoints.get(endpoint);
    if (h === undefined) {
      h = new EndpointHealth(endpoint, this);
      this.endpoints.set(endpoint, h);
    }
    return h;
  }

  isEjected(endpoint: string): boolean {
    return this.endpoints.get(endpoint)?.ejected === true;
  }

  /** The endpoints the balancer may choose: `eps` itself (no copy) while none is ejected. */
  available<T extends { readonly key: string }>(eps: readonly T[]): readonly T[] {
    this.total = eps.length;
    // Endpoints come and go with discovery: forget the ones gone, now and then.
    if (this.endpoints.size > 2 * eps.length + 8) this.prune(eps);
    if (this.ejected === 0) return eps;
    const out = eps.filter((e) => !this.isEjected(e.key));
    // Discovery may have dropped every endpoint still in: an ejected one beats none.
    return out.length > 0 ? out : eps;
  }

  /** @internal via EndpointHealth.failed */
  failed(h: EndpointHealth, kind: '5xx' | 'connect'): void {
    // Answers to requests sent before the ejection keep arriving: they change nothing.
    if (h.ejected) return;
    const s = this.settings;
    let reason: EjectionReason;
    if (kind === '5xx') {
      h.failsConnect = 0;
      if (s.consecutive5xx <= 0) return;
      h.fails5xx++;
      if (!h.probation && h.fails5xx < s.consecutive5xx) return;
      reason = 'consecutive_5xx';
    } else {
      if (s.consecutiveConnectFailures <= 0) return;
      h.failsConnect++;
      if (!h.probation && h.failsConnect < s.consecutiveConnectFailures) return;
      reason = 'consecutive_connect_failures';
    }
    // At the cap the endpoint stays in, its counter still over the threshold: it goes at its
    // next failure once another endpoint has come back.
    if (this.ejected >= maxEjected(this.total, s.maxEjectedPercent)) return;
    this.eject(h, reason, s);
  }

  private eject(h: EndpointHealth, reason: EjectionReason, s: OutlierSettings): void {
    const now = this.now();
    // A whole base period back in without an ejection: the streak is over.
    if (h.ejections > 0 && now - h.returnedAt >= s.baseEjectionMs) h.ejections = 0;
    h.ejections++;
    const ms = Math.min(s.baseEjectionMs * h.ejections, Math.max(MAX_EJECTION_MS, s.baseEjectionMs));
    h.ejected = true;
    h.probation = false;
    h.fails5xx = 0;
    h.failsConnect = 0;
    this.ejected++;
    const m = this.deps.metrics;
    m.outlierEjections.child(reason).inc();
    m.outlierEjected.child().inc();
    this.deps.log.warn(
      { event: 'outlier_ejected', destination: this.destination, endpoint: h.endpoint, reason, ms },
      `endpoint ${h.endpoint} of ${this.destination} ejected for ${ms} ms (${reason})`,
    );
    h.timer = setTimeout(() => this.restore(h), ms);
    h.timer.unref();
  }

  private restore(h: EndpointHealth): void {
    h.timer = undefined;
    if (!h.ejected) return;
    h.ejected = false;
    h.probation = true;
    h.returnedAt = this.now();
    this.ejected--;
    this.deps.metrics.outlierEjected.child().dec();
    this.deps.log.warn(
      { event: 'outlier_returned', destination: this.destination, endpoint: h.endpoint },
      `endpoint ${h.endpoint} of ${this.destination} back in load balancing`,
    );
  }

  private prune(eps: readonly { readonly key: string }[]): void {
    const keep = new Set(eps.map((e) => e.key));
    for (const [k, h] of this.endpoints) if (!keep.has(k) && !h.ejected) this.endpoints.delete(k);
  }

  /** Stops the timers; ejected endpoints leave the gauge. */
  close(): void {
    for (const h of this.endpoints.values()) {
      if (h.timer !== undefined) clearTimeout(h.timer);
      h.timer = undefined;
      if (h.ejected) {
        h.ejected = false;
        this.ejected--;
        this.deps.metrics.outlierEjected.child().dec();
      }
    }
    this.endpoints.clear();
  }
}
