/**
 * The policy document the injector serves to proxies (docs/policy-distribution.md). Every new
 * text (file or ConfigMap) is validated with the proxy's own parser before it is served; an
 * invalid one keeps the last good document in service, is logged with every problem, and
 * counted. What is served is the document's text, whole: each proxy compiles it for its own
 * workload, so the control plane does no per-workload work and a proxy never runs a policy
 * compiled by another version of the compiler than its own.
 */
import { PolicyInvalidError, parsePolicyDocument, policyVersion } from '@remora/proxy/policy';
import type { Logger } from 'pino';

export interface PolicySnapshot {
  /** the proxy's policyVersion of the text (sha256 prefix) */
  readonly version: string;
  readonly document: string;
}

export type PolicyUpdateResult = 'accepted' | 'rejected';

export interface PolicyStoreMetrics {
  policyUpdate(result: PolicyUpdateResult): void;
}

type Listener = (snapshot: PolicySnapshot) => void;

export class PolicyStore {
  private snap: PolicySnapshot | undefined;
  private refused: string | undefined;
  private readonly listeners = new Set<Listener>();
  /** every problem of the last refused text since the last accepted one */
  lastErrors: readonly string[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly metrics?: PolicyStoreMetrics,
  ) {}

  /** The document in service, or undefined when none was ever accepted. */
  get current(): PolicySnapshot | undefined {
    return this.snap;
  }

  /** Serves `text` when valid; else keeps the last good document and says why. */
  update(text: string, source: string): boolean {
    if (text === this.snap?.document) return true;
    if (text === this.refused) return false;
    try {
      parsePolicyDocument(text);
    } catch (err) {
      this.refused = text;
      this.lastErrors = err instanceof PolicyInvalidError ? err.errors : [(err as Error).message];
      this.metrics?.policyUpdate('rejected');
      this.logger.warn(
        { event: 'policy_rejected', source, errors: this.lastErrors, serving: this.snap?.version ?? null },
        `policy from ${source} rejected, keeping the last good one: ${this.lastErrors.join('; ')}`,
      );
      return false;
    }
    const snap = Object.freeze({ version: policyVersion(text), document: text });
    this.snap = snap;
    this.refused = undefined;
    this.lastErrors = [];
    this.metrics?.policyUpdate('accepted');
    this.logger.info(
      { event: 'policy_loaded', source, version: snap.version, subscribers: this.listeners.size },
      'policy document loaded',
    );
    for (const l of this.listeners) l(snap);
    return true;
  }

  /** The source is gone (file deleted, key removed): keep serving what we have, say so. */
  missing(source: string, why: string): void {
    this.logger.warn(
      { event: 'policy_missing', source, serving: this.snap?.version ?? null },
      `policy ${source}: ${why}; keeping the last good one`,
    );
  }

  /** Calls `fn` with every accepted document; returns the unsubscribe function. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Open streams, for tests and logs. */
  subscriptions(): number {
    return this.listeners.size;
  }
}
