/**
 * Compiled matchers for authorization rules and routes (docs/policy.md). A document is compiled
 * once; per decision the facts (identity, its namespace, the parsed address, the path view) are
 * worked out once into a reused scratch object, and every rule then only compares: Set lookups,
 * integer CIDR masks, `startsWith`, a linear segment walk. Nothing here allocates on the way to
 * a decision except the normalized path of an unusual path (`%`, `//`, dot segments).
 */
import { cidrContains, newAddress, parseAddress, parseCidr } from './cidr.js';
import type { Address, Cidr } from './cidr.js';
import {
  matchPattern,
  needsNormalizing,
  normalizePath,
  parsePattern,
  pathEnd,
  regionMatches,
  stripParams,
} from './pattern.js';
import type { PathPattern } from './pattern.js';
import type { HeaderMatch, PathMatch, RequestInfo, RequestMatch, SourceInfo, SourceMatch } from './types.js';

/** What a decision knows about one connection and (for HTTP) one request. */
export interface Facts {
  identity: string | undefined;
  /** namespace of a `spiffe://<td>/ns/<ns>/sa/<sa>` identity, else undefined */
  namespace: string | undefined;
  /** the peer address parsed; false when it is not an IP address (never matches a CIDR) */
  addressOk: boolean;
  readonly address: Address;
  method: string;
  /** the path to match (normalized when it had to be) and where it ends (before `?`) */
  path: string;
  pathEnd: number;
  rawHeaders: readonly string[];
}

export function newFacts(): Facts {
  return {
    identity: undefined,
    namespace: undefined,
    addressOk: false,
    address: newAddress(),
    method: '',
    path: '/',
    pathEnd: 1,
    rawHeaders: [],
  };
}

// Namespaces of the identities seen lately: a workload has few callers, so this stays small;
// cleared when full rather than evicting one by one (the bound matters, not the hit rate).
const NS_CACHE_MAX = 1024;
const nsCache = new Map<string, string | null>();

/** `spiffe://td/ns/<ns>/sa/<sa>` → `<ns>`; any other shape → undefined. */
export function identityNamespace(identity: string): string | undefined {
  const hit = nsCache.get(identity);
  if (hit !== undefined) return hit ?? undefined;
  const ns = parseNamespace(identity);
  if (nsCache.size >= NS_CACHE_MAX) nsCache.clear();
  nsCache.set(identity, ns ?? null);
  return ns;
}

function parseNamespace(id: string): string | undefined {
  if (!id.startsWith('spiffe://')) return undefined;
  const parts = id.slice('spiffe://'.length).split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') return undefined;
  const ns = parts[2] as string;
  const td = parts[0] as string;
  return ns === '' || td === '' || parts[4] === '' ? undefined : ns;
}

/** Fills the source part of `f`. */
export function setSource(f: Facts, src: SourceInfo): void {
  const id = src.identity;
  f.identity = id;
  f.namespace = id === undefined ? undefined : identityNamespace(id);
  f.addressOk = parseAddress(src.address, f.address);
}

/** Fills the request part of `f`. */
export function setRequest(f: Facts, req: RequestInfo): void {
  f.method = req.method;
  f.rawHeaders = req.rawHeaders;
  let p = req.path;
  let end = pathEnd(p);
  // `;` parameters go first, so that Tomcat's `/..;/` counts as the `..` it is there.
  const semi = p.indexOf(';');
  if (semi !== -1 && semi < end) {
    p = stripParams(p, end);
    end = p.length;
  }
  if (needsNormalizing(p, end)) {
    const n = normalizePath(p, end);
    f.path = n;
    f.pathEnd = n.length;
  } else {
    f.path = p;
    f.pathEnd = end;
  }
}

// ---------------------------------------------------------------------------------------------

export class SourceMatcher {
  private readonly identities: ReadonlySet<string> | undefined;
  private readonly namespaces: ReadonlySet<string> | undefined;
  private readonly prefixes: readonly string[] | undefined;
  private readonly cidrs: readonly Cidr[] | undefined;
  /** names identities, namespaces or prefixes: cannot match a plaintext connection */
  readonly needsIdentity: boolean;

  constructor(m: SourceMatch) {
    this.identities = nonEmpty(m.identities) ? new Set(m.identities) : undefined;
    this.namespaces = nonEmpty(m.namespaces) ? new Set(m.namespaces) : undefined;
    this.prefixes = nonEmpty(m.identityPrefixes) ? [...m.identityPrefixes] : undefined;
    this.cidrs = nonEmpty(m.cidrs) ? m.cidrs.map(compileCidr) : undefined;
    this.needsIdentity =
      this.identities !== undefined || this.namespaces !== undefined || this.prefixes !== undefined;
  }

  /** Every present kind must hold (AND); within a kind any entry (OR). */
  matches(f: Facts): boolean {
    if (this.needsIdentity && !this.identityMatches(f)) return false;
    return this.addressMatches(f);
  }

  /** The identity kinds alone (each present kind must hold). */
  identityMatches(f: Facts): boolean {
    const id = f.identity;
    if (id === undefined) return false;
    if (this.identities !== undefined && !this.identities.has(id)) return false;
    if (this.namespaces !== undefined && (f.namespace === undefined || !this.namespaces.has(f.namespace)))
      return false;
    const ps = this.prefixes;
    if (ps !== undefined) {
      let hit = false;
      for (let i = 0; i < ps.length && !hit; i++) hit = id.startsWith(ps[i] as string);
      if (!hit) return false;
    }
    return true;
  }

  /** The CIDR kind alone (true when absent). */
  addressMatches(f: Facts): boolean {
    const cs = this.cidrs;
    if (cs === undefined) return true;
    if (!f.addressOk) return false;
    for (let i = 0; i < cs.length; i++) if (cidrContains(cs[i] as Cidr, f.address)) return true;
    return false;
  }
}

function compileCidr(text: string): Cidr {
  const c = parseCidr(text);
  // The document validator already refused bad CIDRs; a compile-time failure is a bug.
  if (typeof c === 'string') throw new Error(`policy compile: CIDR ${JSON.stringify(text)} ${c}`);
  return c;
}

// ---------------------------------------------------------------------------------------------

const enum PathKind {
  Exact,
  Prefix,
  Pattern,
}

interface CompiledPath {
  readonly kind: PathKind;
  /** lower case when `ignoreCase` */
  readonly text: string;
  readonly pattern: PathPattern | undefined;
  readonly ignoreCase: boolean;
}

const enum HeaderKind {
  Exact,
  Prefix,
  Present,
}

interface CompiledHeader {
  /** lower case */
  readonly name: string;
  readonly kind: HeaderKind;
  readonly value: string;
}

export function compilePath(p: PathMatch): CompiledPath {
  const ic = p.ignoreCase === true;
  const fold = (t: string) => (ic ? t.toLowerCase() : t);
  if ('exact' in p) return { kind: PathKind.Exact, text: fold(p.exact), pattern: undefined, ignoreCase: ic };
  if ('prefix' in p)
    return { kind: PathKind.Prefix, text: fold(p.prefix), pattern: undefined, ignoreCase: ic };
  const pat = parsePattern(fold(p.pattern));
  if (typeof pat === 'string') throw new Error(`policy compile: pattern ${JSON.stringify(p.pattern)} ${pat}`);
  return { kind: PathKind.Pattern, text: fold(p.pattern), pattern: pat, ignoreCase: ic };
}

export function pathMatches(c: CompiledPath, path: string, end: number): boolean {
  switch (c.kind) {
    case PathKind.Exact:
      return end === c.text.length && regionMatches(path, 0, c.text, c.ignoreCase);
    case PathKind.Prefix:
      return c.text.length <= end && regionMatches(path, 0, c.text, c.ignoreCase);
    default:
      return matchPattern(c.pattern as PathPattern, path, end, c.ignoreCase);
  }
}

function compileHeader(h: HeaderMatch): CompiledHeader {
  const name = h.name.toLowerCase();
  if ('exact' in h) return { name, kind: HeaderKind.Exact, value: h.exact };
  if ('prefix' in h) return { name, kind: HeaderKind.Prefix, value: h.prefix };
  return { name, kind: HeaderKind.Present, value: '' };
}

/** `a` equals the lower-case `lower`, ASCII case-insensitively, without building a string. */
function sameName(a: string, lower: string): boolean {
  if (a.length !== lower.length) return false;
  for (let i = 0; i < a.length; i++) {
    let c = a.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Any field with that name satisfies the condition (a repeated header: any of its values). */
export function headerMatches(h: CompiledHeader, raw: readonly string[]): boolean {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!sameName(raw[i] as string, h.name)) continue;
    if (h.kind === HeaderKind.Present) return true;
    const v = raw[i + 1] as string;
    if (h.kind === HeaderKind.Exact ? v === h.value : v.startsWith(h.value)) return true;
  }
  return false;
}

export class RequestMatcher {
  private readonly methods: ReadonlySet<string> | undefined;
  private readonly paths: readonly CompiledPath[] | undefined;
  private readonly headers: readonly CompiledHeader[] | undefined;

  constructor(m: RequestMatch) {
    this.methods = nonEmpty(m.methods) ? new Set(m.methods) : undefined;
    this.paths = nonEmpty(m.paths) ? m.paths.map(compilePath) : undefined;
    this.headers = nonEmpty(m.headers) ? m.headers.map(compileHeader) : undefined;
  }

  /** Methods (any), paths (any) and headers (all) must hold. */
  matches(f: Facts): boolean {
    if (this.methods !== undefined && !this.methods.has(f.method)) return false;
    const ps = this.paths;
    if (ps !== undefined) {
      let hit = false;
      for (let i = 0; i < ps.length && !hit; i++) hit = pathMatches(ps[i] as CompiledPath, f.path, f.pathEnd);
      if (!hit) return false;
    }
    const hs = this.headers;
    if (hs !== undefined) {
      for (let i = 0; i < hs.length; i++)
        if (!headerMatches(hs[i] as CompiledHeader, f.rawHeaders)) return false;
    }
    return true;
  }
}

function nonEmpty<T>(a: readonly T[] | undefined): a is readonly T[] {
  return a !== undefined && a.length > 0;
}
