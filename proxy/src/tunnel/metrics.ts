/**
 * mTLS series (DESIGN §7): failed handshakes by direction and reason, plaintext refused in
 * strict mode (a policy denial), and when the workload certificate expires.
 */
import { METRICS } from '../contract.js';
import type { Counter, Gauge, Registry } from '../metrics/registry.js';
import { PolicyMetrics } from '../policy/metrics.js';

export type HandshakeFailure =
  'untrusted' | 'no_client_cert' | 'identity_mismatch' | 'alpn' | 'bad_connect' | 'no_certificate' | 'error';

export class MeshMetrics {
  readonly handshakeFailures: Counter;
  readonly denials: Counter;
  readonly certExpiry: Gauge;

  constructor(registry: Registry) {
    this.handshakeFailures = registry.counter(
      METRICS.tlsHandshakeFailures,
      'mTLS handshakes on the mesh tunnel that failed, by direction and reason.',
      ['direction', 'reason'],
    );
    this.denials = PolicyMetrics.of(registry).denials;
    this.certExpiry = registry.gauge(
      METRICS.certExpiry,
      'Unix time (seconds) at which the workload certificate expires; 0 while there is none.',
    );
    this.certExpiry.child().set(0);
  }

  failed(direction: 'inbound' | 'outbound', reason: HandshakeFailure): void {
    this.handshakeFailures.child(direction, reason).inc();
  }
}
