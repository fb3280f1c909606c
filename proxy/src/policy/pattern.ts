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

// The path normalization lives with the HTTP stage that forwards the normalized path; matching
// uses the very same functions.
export { needsNormalizing, normalizePath, pathEnd } from '../http/path.js';

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
