/**
 * The policy model (issue 7, docs/policy.md), shared by every policy module, the engine and the
 * injector. Two halves:
 *   - the document: what a user writes (YAML or JSON), after validation (`document.ts`);
 *   - the compiled view: what the data path asks per connection, per request and per upstream
 *     (`compile.ts`), built once per accepted document and swapped whole on an update.
 */

// The document's types are derived from its schema, where each field is declared once with its
// doc line (`document.ts`); they are re-exported here so that every module imports one place.
import type { AuthzRule, CircuitBreaker, OutlierDetection, RateLimit, Route } from './document.js';
export type {
  Authorization,
  AuthzRule,
  CircuitBreaker,
  HeaderMatch,
  InboundPolicy,
  OutboundPolicy,
  OutlierDetection,
  PathMatch,
  Policy,
  PolicyDocument,
  RateLimit,
  RequestMatch,
  RetryPolicy,
  Route,
  SourceMatch,
} from './document.js';

/** What a matching authorization rule (or the default) does. */
export type AuthzAction = AuthzRule['action'];

// ---------------------------------------------------------------------------------------------
// The compiled view, asked on the data path.

/** Who is asking, as the inbound side knows it. */
export interface SourceInfo {
  /** verified SPIFFE identity (mTLS on 15008), undefined for plaintext */
  readonly identity: string | undefined;
  /** peer address (IPv4 or IPv6 text as Node gives it, `::ffff:` mapped forms included) */
  readonly address: string;
}

/** The L7 facts of one request. `headers` is Node's rawHeaders form (name, value, ...). */
export interface RequestInfo {
  readonly method: string;
  /** origin-form target, query included; matching uses the part before `?` */
  readonly path: string;
  readonly rawHeaders: readonly string[];
}

export interface AuthzDecision {
  /** the effective action: `audit` lets the request through and is logged */
  readonly action: AuthzAction;
  /** `<policy>/<rule>` that decided, or `<policy>/default` */
  readonly reason: string;
  /** the rule named an identity but the connection has none (plaintext) */
  readonly needsMtls: boolean;
}

/** Everything the inbound side asks about one target port. */
export interface CompiledInbound {
  /** undefined: nothing to check (allow everything, no audit) */
  authorizeRequest(src: SourceInfo, req: RequestInfo): AuthzDecision | undefined;
  /** opaque TCP (no L7 facts): see AuthzRule.request */
  authorizeConnection(src: SourceInfo): AuthzDecision | undefined;
  readonly rateLimit: RateLimit | undefined;
  /** first route whose match holds, or undefined */
  route(req: RequestInfo): Route | undefined;
  /** stable key of this section (policy name + index), for state that survives updates */
  readonly key: string;
  /**
   * L7 policy governs the port: an authorization rule with request conditions, a rate limit or
   * a route. Such a port refuses what is not HTTP/1 instead of relaying it (docs/policy.md).
   */
  readonly l7: boolean;
}

export interface CompiledOutbound {
  route(req: RequestInfo): Route | undefined;
  readonly circuitBreaker: CircuitBreaker | undefined;
  readonly outlierDetection: OutlierDetection | undefined;
  readonly key: string;
  /** routes (timeouts, retries) govern the destination: it refuses what is not HTTP/1 */
  readonly l7: boolean;
}

/** The policy as it applies to one sidecar (its namespace and workload). */
export interface CompiledPolicy {
  /** sha256 prefix of the accepted document, shown in /config and logs */
  readonly version: string;
  /** names of the policies that selected this workload */
  readonly policies: readonly string[];
  /** undefined: no inbound section covers this port */
  inbound(port: number): CompiledInbound | undefined;
  /** undefined: no outbound section covers this destination (`ip:port`) */
  outbound(destinationKey: string, port: number): CompiledOutbound | undefined;
}

/** The workload a sidecar serves, for selectors. */
export interface WorkloadRef {
  readonly namespace: string | undefined;
  readonly workload: string | undefined;
}

/** Where layers read the policy in force: swapped whole on an accepted update. */
export interface PolicySource {
  readonly current: CompiledPolicy | undefined;
}
