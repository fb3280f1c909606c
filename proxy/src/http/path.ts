/**
 * The request path as the HTTP stage forwards it and policy matches it (docs/policy.md "What is
 * normalized"): percent-encoded unreserved characters decoded (`%61` → `a`), `//` merged, `.`
 * and `..` segments resolved (RFC 3986 §5.2.4, §6.2.2), the query left as sent. One definition
 * for both, so `/./admin` or `/%61dmin` cannot be read one way by policy and another upstream.
 * Clean paths (the usual case) are never copied.
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
