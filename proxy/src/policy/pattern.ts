/**
 * Path conditions (docs/policy.md): exact, prefix and segment patterns (`*` = one non-empty
 * segment, a final `**` = any rest, including nothing). No regular expression is ever built from
 * a policy, and every match is one left-to-right pass over the path: linear in its length,
 * whatever the pattern.
 *
 * Matching sees the path before `?`, normalized the way the app will most likely read it:
 * percent-encoded unreserved characters decoded (`%61` → `a`), `//` merged, `.` and `..`
 * segments resolved (RFC 3986 §5.2.4, §6.2.2). Otherwise `/./admin` or `/%61dmin` would slip past
 * a deny rule for `/admin`. The HTTP stage forwards this same normalized form (http/server.ts
 * `requestPath`) and has already refused what no single reading fits (`%2F`, `%5C`, `#`, `\`:
 * http/validate.ts); matching also drops `;` parameters first (`stripParams`, match.ts).
 * Clean paths (the usual case) are matched in place without building a string.
 */

/** The part of an origin-form target that matching looks at: up to `?` or `#`. */
export function pathEnd(target: string): number {
  const q = target.indexOf('?');
  const h = target.indexOf('#');
  let end = target.length;
  if (q !== -1) end = q;
  if (h !== -1 && h < end) end = h;
  return end;
}

/**
 * `path[0..end)` without its `;` path parameters (RFC 3986 §3.3; `/admin;jsessionid=1/x` →
 * `/admin/x`), as Tomcat and other servlet containers route it. Only called when a `;` is there.
 */
export function stripParams(path: string, end: number): string {
  let out = '';
  let i = 0;
  while (i < end) {
    const semi = path.indexOf(';', i);
    if (semi === -1 || semi >= end) {
      out += path.slice(i, end);
      break;
    }
    out += path.slice(i, semi);
    const slash = path.indexOf('/', semi);
    i = slash === -1 || slash > end ? end : slash;
  }
  return out === '' ? '/' : out;
}

/** `path` has `text` at `at`; `ignoreCase`: ASCII letters of `path` folded (`text` is lower case). */
export function regionMatches(path: string, at: number, text: string, ignoreCase: boolean): boolean {
  if (!ignoreCase) return path.startsWith(text, at);
  if (at + text.length > path.length) return false;
  for (let i = 0; i < text.length; i++) {
    let c = path.charCodeAt(at + i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== text.charCodeAt(i)) return false;
  }
  return true;
}

/** True when the path needs normalizing: a `%`, `//`, or a `.`/`..` segment. */
export function needsNormalizing(p: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x25) return true; // %
    if (c === 0x2f) {
      const n = i + 1 < end ? p.charCodeAt(i + 1) : -1;
      if (n === 0x2f) return true;
      if (n === 0x2e) {
        const n2 = i + 2 < end ? p.charCodeAt(i + 2) : 0x2f;
        if (n2 === 0x2f) return true;
        if (n2 === 0x2e && (i + 3 >= end || p.charCodeAt(i + 3) === 0x2f)) return true;
      }
    }
  }
  return false;
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5f ||
    c === 0x7e
  );
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** The normalized path (see the module comment). Linear: one decode pass, one segment pass. */
export function normalizePath(p: string, end = pathEnd(p)): string {
  if (!needsNormalizing(p, end)) return end === p.length ? p : p.slice(0, end);
  let decoded = '';
  let from = 0;
  for (let i = 0; i < end; i++) {
    if (p.charCodeAt(i) !== 0x25 || i + 2 >= end) continue;
    const a = hex(p.charCodeAt(i + 1));
    const b = hex(p.charCodeAt(i + 2));
    if (a < 0 || b < 0) continue;
    const c = a * 16 + b;
    decoded += p.slice(from, i);
    // Only unreserved characters decode; the rest stays encoded, hex in upper case (RFC 3986 §6.2.2.1).
    decoded += isUnreserved(c) ? String.fromCharCode(c) : p.slice(i, i + 3).toUpperCase();
    from = i + 3;
    i += 2;
  }
  decoded += p.slice(from, end);
  const out: string[] = [];
  const trailing = decoded.length > 1 && decoded.endsWith('/');
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const last = decoded.slice(decoded.lastIndexOf('/') + 1);
  const dirLike = trailing || last === '.' || last === '..';
  const joined = `/${out.join('/')}`;
  return dirLike && out.length > 0 ? `${joined}/` : joined;
}

/** A compiled pattern: literal segments, `*` (one segment) and a final `**`. */
export interface PathPattern {
  readonly segments: readonly string[];
  /** ends in `**` (not part of `segments`) */
  readonly rest: boolean;
}

const STAR = '*';

/** Pattern text → compiled pattern, or an error text (the validator reports it with its path). */
export function parsePattern(text: string): PathPattern | string {
  if (text.charCodeAt(0) !== 0x2f) return 'must start with "/"';
  const parts = text.slice(1).split('/');
  const segments: string[] = [];
  let rest = false;
  for (let i = 0; i < parts.length; i++) {
    const s = parts[i] as string;
    if (s === '**') {
      if (i !== parts.length - 1) return '"**" may only be the last segment';
      rest = true;
    } else if (s.includes('*') && s !== STAR) {
      return '"*" must be a whole segment ("/a/*/b"), not part of one';
    } else if (s === '' && i !== parts.length - 1) {
      return 'has an empty segment ("//")';
    } else {
      segments.push(s);
    }
  }
  return { segments, rest };
}

/**
 * One pass over `path[0..end)` (which starts with `/`): segment k must equal literal k or be any
 * non-empty segment for `*`; with `rest` the path may continue, else it must end exactly.
 */
export function matchPattern(pat: PathPattern, path: string, end: number, ignoreCase = false): boolean {
  const segs = pat.segments;
  let i = 1; // after the leading '/'
  if (path.charCodeAt(0) !== 0x2f) return false;
  for (let k = 0; k < segs.length; k++) {
    const s = segs[k] as string;
    if (i > end) return false;
    let j = path.indexOf('/', i);
    if (j === -1 || j > end) j = end;
    if (s === STAR) {
      if (j === i) return false;
    } else if (j - i !== s.length || !regionMatches(path, i, s, ignoreCase)) {
      return false;
    }
    i = j + 1;
  }
  // All segments consumed: i is one past the separator after the last one (or end + 1).
  if (pat.rest) return true;
  return i === end + 1;
}
