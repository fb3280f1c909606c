/**
 * Policy series (DESIGN §7, docs/policy.md), registered once per registry: the mesh (strict
 * mTLS refusals) and every policy layer count into the same counters, so each asks `of()`.
 * Label values are fixed codes or policy/rule names from the accepted document (bounded by it),
 * never request data.
 */
import { METRICS } from '../contract.js';
import type { Counter, Gauge, Registry } from '../metrics/registry.js';

export class PolicyMetrics {
  /** direction, reason (`<policy>/<rule>`, `<policy>/default`, `plaintext_in_strict_mode`, ...) */
  readonly denials: Counter;
  /** direction, reason */
  readonly audits: Counter;
  /** result: `accepted` | `rejected` */
  readonly updates: Counter;
  /** direction */
  readonly rateLimited: Counter;
  /** direction, reason: `connect-failure` | `5xx` | `reset` */
  readonly retries: Counter;
  /** direction */
  readonly retryBudgetExhausted: Counter;
  /** direction, limit: `max_connections` | `max_pending_requests` | `max_requests` */
  readonly circuitOpen: Counter;
  /** reason: `consecutive_5xx` | `consecutive_connect_failures` */
  readonly outlierEjections: Counter;
  /** no labels: endpoints ejected now */
  readonly outlierEjected: Gauge;

  private constructor(r: Registry) {
    this.denials = r.counter(METRICS.policyDenials, 'Connections or requests refused by policy.', [
      'direction',
      'reason',
    ]);
    this.audits = r.counter(METRICS.policyAudits, 'Connections or requests an audit rule let through.', [
      'direction',
      'reason',
    ]);
    this.updates = r.counter(METRICS.policyUpdates, 'Policy documents received, by result.', ['result']);
    this.rateLimited = r.counter(METRICS.rateLimited, 'Requests answered 429 by the local rate limit.', [
      'direction',
    ]);
    this.retries = r.counter(METRICS.retries, 'Retries sent upstream.', ['direction', 'reason']);
    this.retryBudgetExhausted = r.counter(
      METRICS.retryBudgetExhausted,
      'Retries not sent because the retry budget was spent.',
      ['direction'],
    );
    this.circuitOpen = r.counter(METRICS.circuitOpen, 'Requests refused by a circuit breaker limit.', [
      'direction',
      'limit',
    ]);
    this.outlierEjections = r.counter(METRICS.outlierEjections, 'Endpoints ejected by outlier detection.', [
      'reason',
    ]);
    this.outlierEjected = r.gauge(
      METRICS.outlierEjected,
      'Endpoints ejected by outlier detection right now.',
    );
    this.outlierEjected.child().set(0);
  }

  private static readonly byRegistry = new WeakMap<Registry, PolicyMetrics>();

  /** The one PolicyMetrics of a registry (created at the first call). */
  static of(registry: Registry): PolicyMetrics {
    let m = PolicyMetrics.byRegistry.get(registry);
    if (m === undefined) {
      m = new PolicyMetrics(registry);
      PolicyMetrics.byRegistry.set(registry, m);
    }
    return m;
  }
}
