/**
 * The policy document (docs/policy.md): YAML or JSON text → a validated, frozen PolicyDocument,
 * or a PolicyInvalidError listing every problem with its path
 * (`policies[0].inbound[1].authorization.rules[2].source.cidrs[0]: "10.0.0.0/33" ...`).
 *
 * The schema below is the model: each field is declared once (name, type, bounds, doc line) and
 * the types of `types.ts` are derived from it (`Infer<typeof ...>`). `../schema.ts` does the
 * checking: strict on purpose (unknown fields are refused, so a typo (`namespace` for
 * `namespaces`) never silently widens a rule), sizes and counts capped so a document cannot cost
 * the proxy unbounded memory or time, YAML aliases bounded (billion laughs), duplicate keys
 * refused. Durations are milliseconds, named `...Ms`; every field is optional unless `required`.
 */
import { createHash } from 'node:crypto';
import { PolicyInvalidError } from '../errors.js';
import { GRPC_STATUS, MAX_GRPC_STATUS } from '../grpc/protocol.js';
import { isPeerIdentityHeader } from '../http/headers.js';
import {
  constant,
  custom,
  flag,
  int,
  join,
  list,
  object,
  oneOf,
  parseDocumentText,
  positive,
  required,
  show,
  string,
} from '../schema.js';
import type { Infer, Type } from '../schema.js';
import {
  canonicalAddress,
  parseCidr,
  parseDnsLabel,
  parsePort,
  parseDnsSubdomain,
  parseSpiffeId,
} from '../values.js';
import type { Parsed } from '../values.js';
import { parsePattern } from './pattern.js';

export const API_VERSION = 'remora.dev/v1';
export const KIND = 'PolicySet';

/** Bounds on what one document may hold (docs/policy.md lists them). */
export const POLICY_LIMITS = Object.freeze({
  /** UTF-8 bytes of text */
  maxBytes: 1024 * 1024,
  maxPolicies: 256,
  /** inbound or outbound sections per policy */
  maxSections: 64,
  /** rules per authorization, routes per section */
  maxRules: 1024,
  /** entries of any other list (identities, cidrs, paths, headers, ports, methods, ...) */
  maxEntries: 1024,
  /** YAML alias expansions (anchors are fine, a billion laughs is not) */
  maxAliases: 100,
  /** errors reported (a broken huge document would otherwise yield a huge message) */
  maxErrors: 100,
  /** characters of an identity, path, header value */
  maxString: 4096,
  /** nesting of flow collections (`[`, `{`) and of block ones (indentation column) */
  maxDepth: 64,
  maxIndent: 256,
});

const DAY_MS = 24 * 60 * 60 * 1000;
const ENTRIES = { max: POLICY_LIMITS.maxEntries };
const RULES = { max: POLICY_LIMITS.maxRules };
const SECTIONS = { max: POLICY_LIMITS.maxSections };

// ---------------------------------------------------------------------------------------------
// Value checks: each returns undefined when fine, else the reason (shown after the value).

/** RFC 9110 §5.6.2 token */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Names, identities and CIDRs follow the one rule set of ../values.ts (the webhook's and init's).
const reasonOf = (r: Parsed<unknown>): string | undefined => (r.ok ? undefined : r.reason);
const dnsLabel = (s: string): string | undefined => reasonOf(parseDnsLabel(s));
const dnsSubdomain = (s: string): string | undefined => reasonOf(parseDnsSubdomain(s));
const spiffe = (s: string, prefix: boolean): string | undefined => reasonOf(parseSpiffeId(s, prefix));

function cidr(s: string): string | undefined {
  const c = parseCidr(s);
  return c.ok ? undefined : `is not a CIDR: ${c.reason}`;
}

/** Printable ASCII without space, `?` or `#` (matching sees the path before the query). */
function pathText(s: string): string | undefined {
  if (s.charCodeAt(0) !== 0x2f) return 'must start with "/"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return 'has a space, control or non-ASCII character (percent-encode it)';
    if (c === 0x3f || c === 0x23) return 'has "?" or "#": paths match the part before the query';
  }
  return undefined;
}

function pattern(s: string): string | undefined {
  const t = pathText(s);
  if (t !== undefined) return t;
  const r = parsePattern(s);
  return typeof r === 'string' ? `is not a valid pattern: ${r}` : undefined;
}

/** A gRPC status a call may be retried on: its spec name, upper case; never OK. */
function grpcStatusName(s: string): string | undefined {
  if (s === 'OK') return 'is success: only failures are retried';
  if (Object.hasOwn(GRPC_STATUS, s)) return undefined;
  const upper = s.toUpperCase().replace(/-/g, '_');
  if (upper !== 'OK' && Object.hasOwn(GRPC_STATUS, upper)) return `is not a gRPC status name: write ${upper}`;
  const names = Object.keys(GRPC_STATUS).filter((n) => n !== 'OK');
  return `is not a gRPC status name (one of: ${names.join(', ')})`;
}

function headerName(s: string): string | undefined {
  return TOKEN.test(s) ? undefined : 'is not a header name (RFC 9110 token characters)';
}

function headerValue(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return 'has a control character';
  }
  return undefined;
}

function method(s: string): string | undefined {
  if (!TOKEN.test(s)) return 'is not an HTTP method (RFC 9110 token)';
  return s === s.toUpperCase() ? undefined : `must be upper case (${s.toUpperCase()})`;
}

const TEXT = string();

/** `ip:port` or `[ipv6]:port` → its canonical form (what the data path looks up). */
const destination: Type<string> = custom((v, path, p) => {
  const s = TEXT.parse(v, path, p);
  if (s === undefined) return undefined;
  const bad = (why: string) => {
    p.add(path, `${show(s)} is not a destination (${why})`);
    return undefined;
  };
  const colon = s.lastIndexOf(':');
  if (colon <= 0) return bad('expected "ip:port" or "[ipv6]:port"');
  let host = s.slice(0, colon);
  const portText = s.slice(colon + 1);
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return bad('unclosed "["');
    host = host.slice(1, -1);
  } else if (host.includes(':')) {
    return bad('an IPv6 address must be in brackets: "[fd00::1]:80"');
  }
  const port = parsePort(portText);
  if (!port.ok) return bad('port 1..65535');
  const canon = canonicalAddress(host);
  if (canon === undefined) return bad('host must be an IP address');
  return canon.includes(':') ? `[${canon}]:${port.value}` : `${canon}:${port.value}`;
});

/** `present: true` (a header that must be there); false is refused, not ignored. */
const presentTrue: Type<true> = custom((v, path, p) => {
  if (v === true) return true;
  p.add(path, `must be true (got ${show(v)}); to refuse a header, use a deny rule`);
  return undefined;
});

// ---------------------------------------------------------------------------------------------
// The document, section by section: the only place a field name is written.

/** What a matching authorization rule (or the default) does. */
const ACTION = oneOf(['allow', 'deny', 'audit']);
const PORTS = list(int(1, 65535), ENTRIES);

/** Where a source may be: every listed kind that is present must match (AND); values in a list OR. */
export const SOURCE_MATCH = object({
  /** exact SPIFFE identities (`spiffe://<td>/ns/<ns>/sa/<sa>`); needs mTLS */
  identities: list(
    string((s) => spiffe(s, false)),
    ENTRIES,
  ),
  /** namespaces of the source identity; needs mTLS */
  namespaces: list(string(dnsLabel), ENTRIES),
  /** prefixes of the source identity (`spiffe://cluster.local/ns/shop/`); needs mTLS */
  identityPrefixes: list(
    string((s) => spiffe(s, true)),
    ENTRIES,
  ),
  /** source address ranges, IPv4 or IPv6 (`10.0.0.0/8`, `fd00::/8`, a bare address = /32 or /128) */
  cidrs: list(string(cidr), ENTRIES),
});

/**
 * A path condition, exactly one of `exact`, `prefix`, `pattern` (segments separated by `/`; a
 * `*` segment matches exactly one segment, a final `**` matches any rest including nothing; no
 * regular expressions, so matching is linear in the path's length).
 */
export const PATH_MATCH = object(
  {
    exact: string(pathText),
    prefix: string(pathText),
    pattern: string(pattern),
    /** compare ASCII letters case-insensitively, for apps that route `/Admin` as `/admin` */
    ignoreCase: flag(),
  },
  { exactlyOne: ['exact', 'prefix', 'pattern'] },
);

/** A header condition: `name` plus exactly one of `exact`, `prefix`, `present: true`. */
export const HEADER_MATCH = object(
  {
    name: required(string(headerName)),
    exact: string(headerValue),
    prefix: string(headerValue),
    present: presentTrue,
  },
  {
    exactlyOne: ['exact', 'prefix', 'present'],
    refine: (h, at) => {
      if (!isPeerIdentityHeader(h.name)) return h;
      // Rules see the request as the caller sent it: this header would be the caller's word.
      at.add(
        'name',
        `${h.name} is the proxy's own (removed from every request, never the caller's to set): match the caller with source.identities`,
      );
      return undefined;
    },
  },
);

/** L7 conditions (HTTP only). Kinds AND together; entries of one list OR. */
export const REQUEST_MATCH = object({
  /** upper-case methods (`GET`, `POST`, ...) */
  methods: list(string(method), ENTRIES),
  paths: list(PATH_MATCH, ENTRIES),
  /** every listed header condition must hold */
  headers: list(HEADER_MATCH, ENTRIES),
});

export const AUTHZ_RULE = object({
  /** unique within its policy; appears in logs, the deny reason and the 403 body */
  name: required(string(dnsLabel)),
  action: required(ACTION),
  source: SOURCE_MATCH,
  /** L7 conditions. On an opaque TCP connection a deny rule matches on its source alone
   *  (fail safe) and an allow or audit rule with request conditions never matches. */
  request: REQUEST_MATCH,
});

export const AUTHORIZATION = object({
  /** what happens when no allow/deny rule matches (default `allow`) */
  default: ACTION,
  rules: list(AUTHZ_RULE, RULES),
});

export const RETRY_POLICY = object(
  {
    /** extra attempts after the first (0..5, default 2) */
    attempts: int(0, 5),
    /** retries may add at most this share of the route's requests (percent, default 20) */
    budgetPercent: int(0, 100),
    /** first backoff; doubles per attempt with full jitter, capped by maxBackoffMs (default 25) */
    backoffMs: int(1, 60_000),
    maxBackoffMs: int(1, 600_000),
    /** what is retried (default all three). Only idempotent methods retry on `5xx`/`reset`;
     *  `connect-failure` retries any method (nothing reached the upstream). */
    on: list(oneOf(['connect-failure', '5xx', 'reset']), { max: 3 }),
    /** gRPC calls answered trailers-only with one of these statuses are retried (default
     *  none): their request message is kept for the replay when it is small and complete
     *  before the answer (a unary call). Names as in the gRPC spec: `UNAVAILABLE`, ... */
    grpcStatus: list(string(grpcStatusName), { max: MAX_GRPC_STATUS }),
  },
  {
    refine: (r, at) => {
      if (r.backoffMs !== undefined && r.maxBackoffMs !== undefined && r.maxBackoffMs < r.backoffMs)
        at.add('maxBackoffMs', `${r.maxBackoffMs} is below backoffMs (${r.backoffMs})`);
      return r;
    },
  },
);

export const ROUTE = object({
  /** which requests this route takes (default: every request); the first matching route wins */
  match: REQUEST_MATCH,
  /** whole request, from the head parsed to the response complete: 504 RMR_REQUEST_TIMEOUT */
  timeoutMs: int(1, DAY_MS),
  /** no byte either way for this long: 504 RMR_IDLE_TIMEOUT (or cut, once the response began) */
  idleTimeoutMs: int(1, DAY_MS),
  retries: RETRY_POLICY,
});

export const RATE_LIMIT = object({
  /** sustained rate (token bucket refill), > 0 */
  requestsPerSecond: required(positive(1_000_000)),
  /** bucket size (default: requestsPerSecond, at least 1) */
  burst: int(1, 1_000_000),
  /** one bucket per source identity (plaintext: per source address) or one for all (default `global`) */
  per: oneOf(['identity', 'global']),
});

export const CIRCUIT_BREAKER = object({
  /** open connections to one upstream endpoint */
  maxConnections: int(1, 1_000_000),
  /** requests waiting for a connection to one upstream endpoint; beyond it, 503 RMR_CIRCUIT_OPEN */
  maxPendingRequests: int(1, 1_000_000),
  /** requests in flight to one upstream (all its endpoints together); beyond it, 503 RMR_CIRCUIT_OPEN */
  maxRequests: int(1, 1_000_000),
});

export const OUTLIER_DETECTION = object({
  /** consecutive 5xx answers that eject an endpoint (default 5; 0 turns it off) */
  consecutive5xx: int(0, 1000),
  /** consecutive connect failures that eject an endpoint (default 3; 0 turns it off) */
  consecutiveConnectFailures: int(0, 1000),
  /** first ejection; the n-th ejection of the same endpoint lasts n times as long (default 30000) */
  baseEjectionMs: int(1, DAY_MS),
  /** at most this share of a destination's endpoints ejected at once (percent, default 50) */
  maxEjectedPercent: int(0, 100),
});

export const INBOUND_POLICY = object({
  /** target ports (the app's ports) this section governs; absent or empty: every port */
  ports: PORTS,
  authorization: AUTHORIZATION,
  rateLimit: RATE_LIMIT,
  routes: list(ROUTE, RULES),
});

export const OUTBOUND_POLICY = object({
  /** which destinations: `ip:port` keys (a Service ClusterIP:port) and/or ports; absent: all */
  destinations: list(destination, ENTRIES),
  ports: PORTS,
  routes: list(ROUTE, RULES),
  circuitBreaker: CIRCUIT_BREAKER,
  outlierDetection: OUTLIER_DETECTION,
});

export const POLICY = object(
  {
    /** unique in the document, DNS label form */
    name: required(string(dnsLabel)),
    /** which sidecars apply it; an absent key matches every value */
    selector: object({ namespace: string(dnsLabel), workload: string(dnsSubdomain) }),
    inbound: list(INBOUND_POLICY, SECTIONS),
    outbound: list(OUTBOUND_POLICY, SECTIONS),
  },
  {
    // Rule names: unique across the policy, since `<policy>/<rule>` is the deny reason.
    refine: (pol, at) => {
      const seen = new Map<string, string>();
      (pol.inbound ?? []).forEach((sec, i) =>
        (sec.authorization?.rules ?? []).forEach((r, j) => {
          const here = `inbound[${i}].authorization.rules[${j}].name`;
          const first = seen.get(r.name);
          if (first !== undefined)
            at.add(here, `${show(r.name)} is already used at ${first}; rule names are unique per policy`);
          else seen.set(r.name, join(at.path, here));
        }),
      );
      return pol;
    },
  },
);

/** The whole document: `apiVersion: remora.dev/v1`, `kind: PolicySet`, `policies: [...]`. */
export const POLICY_DOCUMENT = object(
  {
    apiVersion: required(constant(API_VERSION)),
    kind: required(constant(KIND)),
    policies: required(list(POLICY, { max: POLICY_LIMITS.maxPolicies })),
  },
  {
    refine: (doc, at) => {
      const names = new Map<string, number>();
      doc.policies.forEach((pol, i) => {
        const first = names.get(pol.name);
        if (first !== undefined)
          at.add(
            `policies[${i}].name`,
            `${show(pol.name)} is already used by policies[${first}]; policy names are unique`,
          );
        else names.set(pol.name, i);
      });
      return doc;
    },
  },
);

export type SourceMatch = Infer<typeof SOURCE_MATCH>;
export type PathMatch = Infer<typeof PATH_MATCH>;
export type HeaderMatch = Infer<typeof HEADER_MATCH>;
export type RequestMatch = Infer<typeof REQUEST_MATCH>;
export type AuthzRule = Infer<typeof AUTHZ_RULE>;
export type Authorization = Infer<typeof AUTHORIZATION>;
export type RetryPolicy = Infer<typeof RETRY_POLICY>;
export type Route = Infer<typeof ROUTE>;
export type RateLimit = Infer<typeof RATE_LIMIT>;
export type CircuitBreaker = Infer<typeof CIRCUIT_BREAKER>;
export type OutlierDetection = Infer<typeof OUTLIER_DETECTION>;
export type InboundPolicy = Infer<typeof INBOUND_POLICY>;
export type OutboundPolicy = Infer<typeof OUTBOUND_POLICY>;
export type Policy = Infer<typeof POLICY>;
export type PolicyDocument = Infer<typeof POLICY_DOCUMENT>;

/** Parses and validates a policy document; throws PolicyInvalidError listing every problem. */
export function parsePolicyDocument(text: string): PolicyDocument {
  const r = parseDocumentText(text, POLICY_DOCUMENT, POLICY_LIMITS);
  if (!r.ok) throw new PolicyInvalidError(r.errors);
  return r.value;
}

/** Short, stable version of a document's text: sha256 hex, first 12 characters. */
export function policyVersion(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
