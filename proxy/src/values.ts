/**
 * The one set of value validators (issue 16): addresses, CIDRs, ports, port lists and ranges,
 * durations, SPIFFE identities and Kubernetes names. The webhook (pod annotations, mesh config),
 * remora-init (its flags), the proxy's config and the policy parser all call these, so a value
 * the webhook admits is one that init and the proxy accept, and a value they refuse is refused at
 * admission with the same reason (docs/injector.md, "One rule set for values").
 *
 * Each validator takes the text as written and returns the value in its canonical form, or a
 * short reason. Lists say which entry is bad; callers that report every bad entry split the
 * list with `splitList` and validate entry by entry.
 */
import { formatWords, newAddress, parseAddress, parseCidr as parseCidrRange } from './policy/cidr.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

/** An inclusive range of ports, `[from, to]`. */
export type PortRange = readonly [number, number];

/**
 * List entries: separated by commas and/or white space (`80,443`, `80, 443`, `80 443`); empty
 * entries are dropped, so `""` is the empty list.
 */
export function splitList(raw: string): string[] {
  return raw.split(/[\s,]+/).filter((s) => s !== '');
}

/** `*` (every port, every destination) or a list `parse` accepts. */
export function parseAllOr<T>(raw: string, parse: (raw: string) => Parsed<T>): Parsed<T | '*'> {
  return raw.trim() === '*' ? ok('*') : parse(raw);
}

// ---------------------------------------------------------------------------------------------
// Addresses and CIDRs: the policy parser's (policy/cidr.ts), the strictest of the three there
// were. No IPv6 zone (`fe80::1%eth0`: iptables and policy cannot use one), no leading zeros in
// an octet (`010.0.0.1` is octal elsewhere), a bare address is a host route (/32 or /128).

const scratch = newAddress();

/** An IPv4 or IPv6 address, without a zone; returned as written. */
export function parseIpAddress(raw: string): Parsed<string> {
  if (raw.includes('%') || !parseAddress(raw, scratch)) return bad('is not an IP address');
  return ok(raw);
}

/** `10.0.0.0/8`, `fd00::/8`, `10.0.0.1` (= /32): the canonical network text (`10.1.2.3/8` → `10.0.0.0/8`). */
export function parseCidr(raw: string): Parsed<string> {
  const c = parseCidrRange(raw);
  return typeof c === 'string' ? bad(c) : ok(c.text);
}

/** The canonical text of an address alone (`FD00:0::1` → `fd00::1`), or undefined. */
export function canonicalAddress(raw: string): string | undefined {
  if (raw.includes('/') || raw.includes('%') || !parseAddress(raw, scratch)) return undefined;
  return formatWords(scratch.v4, scratch.words);
}

/** Comma-separated CIDRs, canonical, duplicates dropped. */
export function parseCidrList(raw: string): Parsed<string[]> {
  const out: string[] = [];
  for (const entry of splitList(raw)) {
    const c = parseCidr(entry);
    if (!c.ok)
      return bad(
        `must be a comma-separated list of CIDRs like 10.0.0.0/8 (bad entry "${entry}": ${c.reason})`,
      );
    out.push(c.value);
  }
  return ok([...new Set(out)]);
}

// ---------------------------------------------------------------------------------------------
// Ports

const PORT_TEXT = /^\d{1,5}$/;

/** A TCP port someone connects to: 1-65535 (leading zeros allowed, at most 5 digits). */
export function parsePort(raw: string): Parsed<number> {
  const n = PORT_TEXT.test(raw) ? Number(raw) : NaN;
  return n >= 1 && n <= 65535 ? ok(n) : bad('is not a port (1-65535)');
}

/** A port written as a JSON number (a discovery file, a probe): an integer 1-65535. */
export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** A port to listen on: 0-65535, where 0 asks the kernel for a free one (tests). */
export function parseBindPort(raw: string): Parsed<number> {
  const n = PORT_TEXT.test(raw) ? Number(raw) : NaN;
  return n >= 0 && n <= 65535 ? ok(n) : bad('is not a port to listen on (0-65535)');
}

/** Ports (`80,443`), duplicates dropped, in the order written. */
export function parsePortList(raw: string): Parsed<number[]> {
  const out: number[] = [];
  for (const entry of splitList(raw)) {
    const p = parsePort(entry);
    if (!p.ok) return bad(`must be a comma-separated list of ports 1-65535 (bad entry "${entry}")`);
    out.push(p.value);
  }
  return ok([...new Set(out)]);
}

/** One port or an inclusive range (`9000-9010`), from ≤ to. */
export function parsePortRange(raw: string): Parsed<PortRange> {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(raw);
  const from = m ? Number(m[1]) : NaN;
  const to = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || !(from >= 1) || !(to <= 65535) || from > to)
    return bad('is not a port or a range of ports (1-65535, e.g. 3306 or 9000-9010)');
  return ok([from, to]);
}

/** `3306,5432,9000-9010`: ranges, duplicates dropped. */
export function parsePortRanges(raw: string): Parsed<PortRange[]> {
  const out = new Map<string, PortRange>();
  for (const entry of splitList(raw)) {
    const r = parsePortRange(entry);
    if (!r.ok)
      return bad(
        `must be a comma-separated list of ports 1-65535 or ranges like 9000-9010 (bad entry "${entry}")`,
      );
    out.set(formatPortRange(r.value), r.value);
  }
  return ok([...out.values()]);
}

/** `9000-9010`, or `3306` for a range of one. */
export function formatPortRange([from, to]: PortRange): string {
  return from === to ? String(from) : `${from}-${to}`;
}

// ---------------------------------------------------------------------------------------------
// Durations

/** Seconds in [0, max], fractions allowed (`2.5`); no sign, exponent or hex. */
export function parseSeconds(raw: string, max: number): Parsed<number> {
  const n = /^(?:\d{1,7}(?:\.\d{1,3})?|\.\d{1,3})$/.test(raw) ? Number(raw) : NaN;
  return n >= 0 && n <= max ? ok(n) : bad(`must be a number of seconds 0-${max} (e.g. 5 or 2.5)`);
}

// ---------------------------------------------------------------------------------------------
// Names (Kubernetes) and identities (SPIFFE)

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
/** SPIFFE-ID §2.1: lower-case letters, digits, `.`, `-`, `_`; here also alphanumeric ends. */
const TRUST_DOMAIN = /^(?=.{1,255}$)[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;
/** SPIFFE path segment characters (SPIFFE-ID §2.2: letters, digits, `.`, `-`, `_`) */
const SPIFFE_SEGMENT = /^[A-Za-z0-9._-]+$/;

/** RFC 1123 label: a namespace, a container or Service port name. */
export function parseDnsLabel(raw: string): Parsed<string> {
  return DNS_LABEL.test(raw)
    ? ok(raw)
    : bad('is not a DNS label (a-z, 0-9, "-", at most 63, alphanumeric ends)');
}

/** RFC 1123 subdomain: most object names (a workload, a service account). */
export function parseDnsSubdomain(raw: string): Parsed<string> {
  return DNS_SUBDOMAIN.test(raw) ? ok(raw) : bad('is not a DNS subdomain name (a-z, 0-9, "-", ".")');
}

/** The trust domain of the mesh's identities (`cluster.local`). */
export function parseTrustDomain(raw: string): Parsed<string> {
  return TRUST_DOMAIN.test(raw)
    ? ok(raw)
    : bad('is not a trust domain (a-z, 0-9, ".", "-", "_", at most 255, alphanumeric ends)');
}

function segmentOk(seg: string): boolean {
  return seg !== '.' && seg !== '..' && SPIFFE_SEGMENT.test(seg);
}

/**
 * `spiffe://<trust-domain>/<segment>/...`. With `prefix`, a leading part that ends in `/`
 * (`spiffe://td/ns/shop/`), so that it cannot match `.../ns/shopping`.
 */
export function parseSpiffeId(raw: string, prefix = false): Parsed<string> {
  const what = prefix ? 'is not a SPIFFE identity prefix' : 'is not a SPIFFE identity';
  if (!raw.startsWith('spiffe://')) return bad(`${what} (must start with "spiffe://")`);
  const rest = raw.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash === -1 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(td)) return bad(`${what} (bad trust domain ${JSON.stringify(td)})`);
  if (prefix) {
    if (!raw.endsWith('/'))
      return bad(`${what} (must end with "/", so that ".../ns/shop/" cannot match ".../ns/shopping")`);
    if (slash === -1) return bad(what);
    const segs = rest.slice(slash + 1, -1);
    return segs === '' || segs.split('/').every(segmentOk) ? ok(raw) : bad(`${what} (bad path segment)`);
  }
  if (slash === -1 || slash === rest.length - 1) return bad(`${what} (no path after the trust domain)`);
  return rest
    .slice(slash + 1)
    .split('/')
    .every(segmentOk)
    ? ok(raw)
    : bad(`${what} (bad path segment: empty, "." or "..", or a character outside A-Z a-z 0-9 . - _)`);
}
