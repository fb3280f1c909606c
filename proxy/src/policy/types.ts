/**
 * The policy model (issue 7, docs/policy.md), shared by every policy module, the engine and the
 * injector. Two halves:
 *   - the document: what a user writes (YAML or JSON), after validation (`document.ts`);
 *   - the compiled view: what the data path asks per connection, per request and per upstream
 *     (`compile.ts`), built once per accepted document and swapped whole on an update.
 * Durations are milliseconds, named `...Ms`; every field is optional unless said otherwise.
 */

/** What a matching authorization rule (or the default) does. */
export type AuthzAction = 'allow' | 'deny' | 'audit';

/** Where a source may be: every listed kind that is present must match (AND); values in a list OR. */
export interface SourceMatch {
  /** exact SPIFFE identities (`spiffe://<td>/ns/<ns>/sa/<sa>`); needs mTLS */
  readonly identities?: readonly string[];
  /** namespaces of the source identity; needs mTLS */
  readonly namespaces?: readonly string[];
  /** prefixes of the source identity (`spiffe://cluster.local/ns/shop/`); needs mTLS */
  readonly identityPrefixes?: readonly string[];
  /** source address ranges, IPv4 or IPv6 (`10.0.0.0/8`, `fd00::/8`, a bare address = /32 or /128) */
  readonly cidrs?: readonly string[];
}

/**
 * A path condition, exactly one key: `exact`, `prefix`, or `pattern` (segments separated by
 * `/`; a `*` segment matches exactly one segment, a final `**` matches any rest including
 * nothing; no regular expressions, so matching is linear in the path's length).
 */
export type PathMatch = (
  { readonly exact: string } | { readonly prefix: string } | { readonly pattern: string }
) & {
  /** compare ASCII letters case-insensitively, for apps that route `/Admin` as `/admin` */
  readonly ignoreCase?: boolean;
};

/** A header condition: `name` plus exactly one of `exact`, `prefix`, `present: true`. */
export type HeaderMatch =
  | { readonly name: string; readonly exact: string }
  | { readonly name: string; readonly prefix: string }
  | { readonly name: string; readonly present: true };

/** L7 conditions (HTTP only). Kinds AND together; entries of one list OR. */
export interface RequestMatch {
  /** upper-case methods (`GET`, `POST`, ...) */
  readonly methods?: readonly string[];
  readonly paths?: readonly PathMatch[];
  /** every listed header condition must hold */
  readonly headers?: readonly HeaderMatch[];
}

export interface AuthzRule {
  /** unique within its policy; appears in logs, the deny reason and the 403 body */
  readonly name: string;
  readonly action: AuthzAction;
  readonly source?: SourceMatch;
  /** L7 conditions. On an opaque TCP connection a deny rule matches on its source alone
   *  (fail safe) and an allow or audit rule with request conditions never matches. */
  readonly request?: RequestMatch;
}

export interface Authorization {
  /** what happens when no allow/deny rule matches (default `allow`) */
  readonly default?: AuthzAction;
  readonly rules?: readonly AuthzRule[];
}

export interface RetryPolicy {
  /** extra attempts after the first (0..5, default 2) */
  readonly attempts?: number;
  /** retries may add at most this share of the route's requests (percent, default 20) */
  readonly budgetPercent?: number;
  /** first backoff; doubles per attempt with full jitter, capped by maxBackoffMs (default 25) */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** what is retried (default all three). Only idempotent methods retry on `5xx`/`reset`;
   *  `connect-failure` retries any method (nothing reached the upstream). */
  readonly on?: readonly ('connect-failure' | '5xx' | 'reset')[];
}

export interface Route {
  /** which requests this route takes (default: every request); the first matching route wins */
  readonly match?: RequestMatch;
  /** whole request, from the head parsed to the response complete: 504 RMR_REQUEST_TIMEOUT */
  readonly timeoutMs?: number;
  /** no byte either way for this long: 504 RMR_IDLE_TIMEOUT (or cut, once the response began) */
  readonly idleTimeoutMs?: number;
  readonly retries?: RetryPolicy;
}

export interface RateLimit {
  /** sustained rate (token bucket refill), > 0 */
  readonly requestsPerSecond: number;
  /** bucket size (default: requestsPerSecond, at least 1) */
  readonly burst?: number;
  /** one bucket per source identity (plaintext: per source address) or one for all (default `global`) */
  readonly per?: 'identity' | 'global';
}

export interface CircuitBreaker {
  /** open connections to one upstream endpoint */
  readonly maxConnections?: number;
  /** requests waiting for a connection to one upstream endpoint; beyond it, 503 RMR_CIRCUIT_OPEN */
  readonly maxPendingRequests?: number;
  /** requests in flight to one upstream (all its endpoints together); beyond it, 503 RMR_CIRCUIT_OPEN */
  readonly maxRequests?: number;
}

export interface OutlierDetection {
  /** consecutive 5xx answers that eject an endpoint (default 5; 0 turns it off) */
  readonly consecutive5xx?: number;
  /** consecutive connect failures that eject an endpoint (default 3; 0 turns it off) */
  readonly consecutiveConnectFailures?: number;
  /** first ejection; the n-th ejection of the same endpoint lasts n times as long (default 30000) */
  readonly baseEjectionMs?: number;
  /** at most this share of a destination's endpoints ejected at once (percent, default 50) */
  readonly maxEjectedPercent?: number;
}

export interface InboundPolicy {
  /** target ports (the app's ports) this section governs; absent or empty: every port */
  readonly ports?: readonly number[];
  readonly authorization?: Authorization;
  readonly rateLimit?: RateLimit;
  readonly routes?: readonly Route[];
}

export interface OutboundPolicy {
  /** which destinations: `ip:port` keys (a Service ClusterIP:port) and/or ports; absent: all */
  readonly destinations?: readonly string[];
  readonly ports?: readonly number[];
  readonly routes?: readonly Route[];
  readonly circuitBreaker?: CircuitBreaker;
  readonly outlierDetection?: OutlierDetection;
}

export interface Policy {
  /** required, unique in the document, DNS label form */
  readonly name: string;
  /** which sidecars apply it; an absent key matches every value */
  readonly selector?: { readonly namespace?: string; readonly workload?: string };
  readonly inbound?: readonly InboundPolicy[];
  readonly outbound?: readonly OutboundPolicy[];
}

/** The whole document: `apiVersion: remora.dev/v1`, `kind: PolicySet`, `policies: [...]`. */
export interface PolicyDocument {
  readonly apiVersion: 'remora.dev/v1';
  readonly kind: 'PolicySet';
  readonly policies: readonly Policy[];
}

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
