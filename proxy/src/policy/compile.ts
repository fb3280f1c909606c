/**
 * A validated document → the view one sidecar asks on its data path (docs/policy.md):
 *   - selection: policies whose selector matches this workload (an absent key matches anything);
 *   - merge: on one inbound port every section that covers it takes part; sections that name the
 *     port come before catch-all ones (for routes and the rate limit: first wins); authorization
 *     merges all their rules: any matching deny rule denies, else any matching allow rule
 *     allows, else the most restrictive of their defaults decides (deny > audit > allow); a
 *     matching audit rule only reports a request that goes through;
 *   - precomputed: the answer for each named port and one for every other port, so `inbound()`
 *     is one Map lookup; outbound likewise per named destination, per named port, and the rest.
 * Decisions are frozen objects built here, one per rule and outcome: deciding allocates nothing.
 */
import type {
  AuthzAction,
  AuthzDecision,
  CircuitBreaker,
  CompiledInbound,
  CompiledOutbound,
  CompiledPolicy,
  InboundPolicy,
  OutboundPolicy,
  OutlierDetection,
  Policy,
  PolicyDocument,
  RateLimit,
  RequestInfo,
  Route,
  SourceInfo,
  WorkloadRef,
} from './types.js';
import { RequestMatcher, SourceMatcher, newFacts, setRequest, setSource } from './match.js';
import type { Facts } from './match.js';

/** One authorization rule, compiled. */
interface Rule {
  readonly source: SourceMatcher | undefined;
  readonly request: RequestMatcher | undefined;
  readonly decision: AuthzDecision;
  /** position in the Authorizer's identity verdicts */
  readonly idx: number;
}

/** Identities whose per-rule verdicts one Authorizer keeps (callers are few; cleared when full). */
const IDENTITY_CACHE_MAX = 1024;

const RANK: Readonly<Record<AuthzAction, number>> = { allow: 0, audit: 1, deny: 2 };

function decision(action: AuthzAction, reason: string, needsMtls = false): AuthzDecision {
  return Object.freeze({ action, reason, needsMtls });
}

// One scratch for every decision: decisions are synchronous and never re-entered.
const facts: Facts = newFacts();

/**
 * The merged authorization of one port. Rules keep document order within each action, so the
 * reason named is the first matching rule of the action that decided, as written.
 */
class Authorizer {
  private readonly deny: Rule[] = [];
  private readonly audit: Rule[] = [];
  private readonly allow: Rule[] = [];
  private readonly byDefault: AuthzDecision;
  private readonly byDefaultNeedsMtls: AuthzDecision;
  /** nothing to decide: no rules and default allow */
  readonly trivial: boolean;
  private readonly rules: Rule[] = [];
  /**
   * Per caller identity, whether each rule's identity conditions (identities, namespaces,
   * prefixes) hold: a pure function of the identity, so it is worked out once per caller and
   * a decision then reads one byte per rule instead of Set lookups and prefix compares.
   */
  private readonly verdicts = new Map<string, Uint8Array>();

  constructor(sections: readonly { policy: string; section: InboundPolicy }[]) {
    let def: AuthzAction = 'allow';
    let defPolicy = sections[0]?.policy ?? '';
    for (const { policy, section } of sections) {
      const a = section.authorization;
      if (a === undefined) continue;
      const d = a.default ?? 'allow';
      if (RANK[d] > RANK[def]) {
        def = d;
        defPolicy = policy;
      }
      for (const r of a.rules ?? []) {
        const rule: Rule = {
          source: r.source === undefined ? undefined : new SourceMatcher(r.source),
          request: r.request === undefined ? undefined : new RequestMatcher(r.request),
          decision: decision(r.action, `${policy}/${r.name}`),
          idx: this.rules.length,
        };
        this.rules.push(rule);
        (r.action === 'deny' ? this.deny : r.action === 'audit' ? this.audit : this.allow).push(rule);
      }
    }
    this.byDefault = decision(def, `${defPolicy}/default`);
    this.byDefaultNeedsMtls = decision(def, `${defPolicy}/default`, true);
    this.trivial = def === 'allow' && this.deny.length + this.audit.length + this.allow.length === 0;
  }

  /**
   * deny beats everything, then allow, then the default. An audit rule never changes that: when
   * the request goes through (an allow rule, or an allow/audit default) and an audit rule
   * matches, the answer is that audit rule, so it is let through and reported; a denied request
   * is reported as denied. `l7` false: an opaque connection, where deny rules match on their
   * source alone and rules with request conditions otherwise never match.
   */
  decide(f: Facts, l7: boolean): AuthzDecision {
    const v = f.identity === undefined ? undefined : this.verdictsFor(f.identity, f);
    for (const r of this.deny) if (ruleMatches(r, f, v, l7, true)) return r.decision;
    let allowed: AuthzDecision | undefined;
    let needsMtls = false;
    for (const r of this.allow) {
      if (ruleMatches(r, f, v, l7, false)) {
        allowed = r.decision;
        break;
      }
      // A plaintext caller that an identity rule would have let in: the 403 says "requires mTLS".
      if (!needsMtls && f.identity === undefined && r.source?.needsIdentity === true)
        needsMtls = ruleMatchesWithoutIdentity(r, f, l7);
    }
    const outcome = allowed ?? this.byDefault;
    if (outcome.action === 'deny') return needsMtls ? this.byDefaultNeedsMtls : outcome;
    for (const r of this.audit) if (ruleMatches(r, f, v, l7, false)) return r.decision;
    return outcome;
  }

  private verdictsFor(identity: string, f: Facts): Uint8Array {
    let v = this.verdicts.get(identity);
    if (v !== undefined) return v;
    v = new Uint8Array(this.rules.length);
    for (const r of this.rules) v[r.idx] = r.source === undefined || r.source.identityMatches(f) ? 1 : 0;
    if (this.verdicts.size >= IDENTITY_CACHE_MAX) this.verdicts.clear();
    this.verdicts.set(identity, v);
    return v;
  }
}

/** `v`: the caller's identity verdicts, undefined for plaintext (no identity rule can match). */
function ruleMatches(r: Rule, f: Facts, v: Uint8Array | undefined, l7: boolean, isDeny: boolean): boolean {
  const s = r.source;
  if (s !== undefined) {
    if (s.needsIdentity && (v === undefined || v[r.idx] === 0)) return false;
    if (!s.addressMatches(f)) return false;
  }
  if (r.request === undefined) return true;
  if (!l7) return isDeny; // fail safe: an opaque connection cannot prove it is not the request denied
  return r.request.matches(f);
}

function ruleMatchesWithoutIdentity(r: Rule, f: Facts, l7: boolean): boolean {
  if (r.source !== undefined && !r.source.addressMatches(f)) return false;
  if (r.request === undefined) return true;
  return l7 && r.request.matches(f);
}

interface RouteEntry {
  readonly match: RequestMatcher | undefined;
  readonly route: Route;
}

function compileRoutes(routes: readonly Route[]): RouteEntry[] {
  return routes.map((route) => ({
    match: route.match === undefined ? undefined : new RequestMatcher(route.match),
    route,
  }));
}

function firstRoute(routes: readonly RouteEntry[], req: RequestInfo): Route | undefined {
  if (routes.length === 0) return undefined;
  let prepared = false;
  for (const e of routes) {
    if (e.match === undefined) return e.route;
    if (!prepared) {
      setRequest(facts, req);
      prepared = true;
    }
    if (e.match.matches(facts)) return e.route;
  }
  return undefined;
}

interface Section<T> {
  readonly policy: string;
  readonly key: string;
  readonly section: T;
}

class Inbound implements CompiledInbound {
  readonly rateLimit: RateLimit | undefined;
  readonly key: string;
  readonly l7: boolean;
  private readonly authz: Authorizer | undefined;
  private readonly routes: RouteEntry[];

  constructor(sections: readonly Section<InboundPolicy>[]) {
    this.key = sections.map((s) => s.key).join('+');
    this.rateLimit = sections.find((s) => s.section.rateLimit !== undefined)?.section.rateLimit;
    const a = new Authorizer(sections);
    this.authz = a.trivial ? undefined : a;
    this.routes = compileRoutes(sections.flatMap((s) => s.section.routes ?? []));
    this.l7 =
      this.rateLimit !== undefined ||
      this.routes.length > 0 ||
      sections.some((s) => (s.section.authorization?.rules ?? []).some((r) => r.request !== undefined));
  }

  authorizeRequest(src: SourceInfo, req: RequestInfo): AuthzDecision | undefined {
    const a = this.authz;
    if (a === undefined) return undefined;
    setSource(facts, src);
    setRequest(facts, req);
    return a.decide(facts, true);
  }

  authorizeConnection(src: SourceInfo): AuthzDecision | undefined {
    const a = this.authz;
    if (a === undefined) return undefined;
    setSource(facts, src);
    return a.decide(facts, false);
  }

  route(req: RequestInfo): Route | undefined {
    return firstRoute(this.routes, req);
  }
}

class Outbound implements CompiledOutbound {
  readonly key: string;
  readonly l7: boolean;
  readonly circuitBreaker: CircuitBreaker | undefined;
  readonly outlierDetection: OutlierDetection | undefined;
  private readonly routes: RouteEntry[];

  constructor(sections: readonly Section<OutboundPolicy>[]) {
    this.key = sections.map((s) => s.key).join('+');
    this.circuitBreaker = sections.find((s) => s.section.circuitBreaker !== undefined)?.section
      .circuitBreaker;
    this.outlierDetection = sections.find((s) => s.section.outlierDetection !== undefined)?.section
      .outlierDetection;
    this.routes = compileRoutes(sections.flatMap((s) => s.section.routes ?? []));
    this.l7 = this.routes.length > 0;
  }

  route(req: RequestInfo): Route | undefined {
    return firstRoute(this.routes, req);
  }
}

/** An absent selector key matches any value; a named one needs this workload to be known. */
export function selects(p: Policy, self: WorkloadRef): boolean {
  const s = p.selector;
  if (s === undefined) return true;
  if (s.namespace !== undefined && s.namespace !== self.namespace) return false;
  if (s.workload !== undefined && s.workload !== self.workload) return false;
  return true;
}

function covers(list: readonly unknown[] | undefined, v: unknown): boolean {
  return list !== undefined && list.includes(v);
}

function isCatchAll(s: {
  readonly ports?: readonly number[];
  readonly destinations?: readonly string[];
}): boolean {
  return (
    (s.ports === undefined || s.ports.length === 0) &&
    (s.destinations === undefined || s.destinations.length === 0)
  );
}

/** `ip:port` / `[ipv6]:port` → the port. */
function portOf(key: string): number {
  return Number(key.slice(key.lastIndexOf(':') + 1));
}

export function compilePolicy(doc: PolicyDocument, self: WorkloadRef, version: string): CompiledPolicy {
  const selected = doc.policies.filter((p) => selects(p, self));
  const ins: Section<InboundPolicy>[] = [];
  const outs: Section<OutboundPolicy>[] = [];
  for (const p of selected) {
    (p.inbound ?? []).forEach((section, i) =>
      ins.push({ policy: p.name, key: `${p.name}/inbound[${i}]`, section }),
    );
    (p.outbound ?? []).forEach((section, i) =>
      outs.push({ policy: p.name, key: `${p.name}/outbound[${i}]`, section }),
    );
  }

  // Inbound: the sections naming a port, then the catch-all ones.
  const inAll = ins.filter((s) => isCatchAll(s.section));
  const inbound = new Map<number, Inbound>();
  for (const port of new Set(ins.flatMap((s) => s.section.ports ?? []))) {
    inbound.set(port, new Inbound([...ins.filter((s) => covers(s.section.ports, port)), ...inAll]));
  }
  const inboundRest = inAll.length > 0 ? new Inbound(inAll) : undefined;

  // Outbound: sections naming the destination, then those naming its port, then catch-all ones.
  const outAll = outs.filter((s) => isCatchAll(s.section));
  const byPort = (port: number) => outs.filter((s) => covers(s.section.ports, port));
  const outboundByPort = new Map<number, Outbound>();
  for (const port of new Set(outs.flatMap((s) => s.section.ports ?? []))) {
    outboundByPort.set(port, new Outbound([...byPort(port), ...outAll]));
  }
  const outboundByDest = new Map<string, Outbound>();
  for (const dest of new Set(outs.flatMap((s) => s.section.destinations ?? []))) {
    const named = outs.filter((s) => covers(s.section.destinations, dest));
    const viaPort = byPort(portOf(dest)).filter((s) => !named.includes(s));
    outboundByDest.set(dest, new Outbound([...named, ...viaPort, ...outAll]));
  }
  const outboundRest = outAll.length > 0 ? new Outbound(outAll) : undefined;

  return Object.freeze({
    version,
    policies: Object.freeze(selected.map((p) => p.name)),
    inbound: (port: number) => inbound.get(port) ?? inboundRest,
    outbound: (destinationKey: string, port: number) =>
      outboundByDest.get(destinationKey) ?? outboundByPort.get(port) ?? outboundRest,
  });
}
