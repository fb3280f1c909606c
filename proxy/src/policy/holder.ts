/**
 * The policy in force for this sidecar (docs/policy-distribution.md). Sources (the file, the
 * injector's stream) hand it document text; it parses, compiles for this workload and swaps
 * `current` whole. Layers read `current` per request or connection, so an update applies to
 * the next request on every open connection and nothing is rebuilt or dropped. An invalid
 * update keeps the last good policy, says why (log, counter, /config) and never stops the proxy.
 */
import type { Logger } from '../log.js';
import { PolicyInvalidError } from '../errors.js';
import { compilePolicy } from './compile.js';
import { parsePolicyDocument, policyVersion } from './document.js';
import { NO_AUTHZ_PORTS, authzPorts } from './governed.js';
import type { AuthzPorts } from './governed.js';
import type { PolicyMetrics } from './metrics.js';
import type { CompiledPolicy, PolicySource, WorkloadRef } from './types.js';

/** The last rejected document: when, from where, and every problem in it. */
export interface PolicyRejection {
  readonly at: string;
  readonly from: string;
  readonly errors: readonly string[];
}

/** What /config shows under `policy`. */
export interface PolicyStatus {
  /** version of the policy in force (sha256 prefix of its text), null: none */
  readonly version: string | null;
  /** names of the policies that selected this workload */
  readonly policies: readonly string[];
  /** where documents come from: `file <path>` or `stream <host:port>` */
  readonly source: string;
  /** the last rejected update since the last accepted one, or null */
  readonly lastError: PolicyRejection | null;
  /** the source has answered (or its wait bound passed): readiness no longer waits on it */
  readonly ready: boolean;
}

export interface PolicyHolderOptions {
  readonly self: WorkloadRef;
  readonly metrics: PolicyMetrics;
  readonly log: Logger;
  /** shown in /config and logs: `file <path>`, `stream <host:port>` */
  readonly source: string;
}

/** Every problem of a document, whether parse or compile found it. */
export function policyErrors(err: unknown): readonly string[] {
  if (err instanceof PolicyInvalidError) return err.errors;
  return [err instanceof Error ? err.message : String(err)];
}

export class PolicyHolder implements PolicySource {
  current: CompiledPolicy | undefined = undefined;
  /** the ports the policy in force authorizes (the supervisor's degraded relay resets them) */
  authzPorts: AuthzPorts = NO_AUTHZ_PORTS;
  private text: string | undefined = undefined;
  /** the text last refused, so a source that re-sends it (a re-read file) is not re-logged */
  private refusedText: string | undefined = undefined;
  private rejection: PolicyRejection | null = null;
  private isReady = false;
  private readonly readyWaiters: (() => void)[] = [];

  constructor(private readonly o: PolicyHolderOptions) {}

  /** Parses and compiles for this workload; throws PolicyInvalidError listing every problem. */
  compile(text: string): CompiledPolicy {
    return compilePolicy(parsePolicyDocument(text), this.o.self, policyVersion(text));
  }

  /**
   * The first document at start (the file): an invalid one throws (a config error, DESIGN §8).
   * Makes the holder ready.
   */
  load(text: string, from: string): void {
    const compiled = this.compile(text);
    this.accept(text, compiled, from);
    this.markReady();
  }

  /** A later document: applied when valid, else the last good policy stays. Never throws. */
  update(text: string, from: string): boolean {
    if (text === this.text) return true;
    if (text === this.refusedText) return false;
    let compiled: CompiledPolicy;
    try {
      compiled = this.compile(text);
    } catch (err) {
      const errors = policyErrors(err);
      this.refusedText = text;
      this.rejection = { at: new Date().toISOString(), from, errors };
      this.o.metrics.updates.child('rejected').inc();
      this.o.log.warn(
        { event: 'policy_rejected', from, errors, keeping: this.current?.version ?? null },
        'policy update rejected: keeping the last good policy',
      );
      return false;
    }
    this.accept(text, compiled, from);
    return true;
  }

  /** The source says there is no policy (the injector serves none): nothing is enforced. */
  clear(from: string): void {
    if (this.current === undefined && this.text === undefined) return;
    const was = this.current?.version;
    this.current = undefined;
    this.authzPorts = NO_AUTHZ_PORTS;
    this.text = undefined;
    this.refusedText = undefined;
    this.rejection = null;
    this.o.log.warn({ event: 'policy_cleared', from, was }, 'policy source serves no policy: none enforced');
    this.changed();
  }

  private readonly changeListeners: (() => void)[] = [];

  /** Runs `fn` after every change of the policy in force (accepted update or clear). */
  onChange(fn: () => void): void {
    this.changeListeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.changeListeners) fn();
  }

  private accept(text: string, compiled: CompiledPolicy, from: string): void {
    const was = this.current?.version;
    this.current = compiled;
    // Parsed a second time (rare: accepted updates only), so compile() stays as it is.
    this.authzPorts = authzPorts(parsePolicyDocument(text), this.o.self);
    this.text = text;
    this.refusedText = undefined;
    this.rejection = null;
    this.o.metrics.updates.child('accepted').inc();
    this.o.log.info(
      { event: 'policy_updated', from, version: compiled.version, was, policies: compiled.policies },
      'policy in force',
    );
    this.changed();
  }

  /** Readiness stops waiting on policy (first answer from the source, or its bound passed). */
  markReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  get ready(): boolean {
    return this.isReady;
  }

  whenReady(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  status(): PolicyStatus {
    return {
      version: this.current?.version ?? null,
      policies: this.current?.policies ?? [],
      source: this.o.source,
      lastError: this.rejection,
      ready: this.isReady,
    };
  }
}
