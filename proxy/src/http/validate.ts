/**
 * Checks on a request head that Node's parser lets through but that a backend could read in a
 * way the proxy did not (docs/policy.md "What is normalized", docs/proxy.md "Bad input"):
 *   - the path must be RFC 3986 (`path-absolute`: pchar and `/`, well-formed percent-encoding):
 *     `#`, `\`, `"`, `<`, `>`, `{`, `}`, `|`, `^`, `` ` ``, `[`, `]` and a `%` without two hex
 *     digits are refused, as is an encoded slash or backslash (`%2F`, `%5C`), which some servers
 *     decode into a segment separator after the proxy has matched the path (Envoy's
 *     `path_with_escaped_slashes_action: REJECT_REQUEST`), and `%00` (Istio refuses it too). The
 *     query is not matched by policy and
 *     is forwarded as the parser accepted it;
 *   - a header whose name is a framing header spelt differently (`Transfer_Encoding`,
 *     `Content---Length`): some servers fold `_` into `-` and would frame the body by it;
 *   - GET and HEAD with a body: servers that ignore such a body read it as the next request.
 * Each returns undefined when the head is fine, else the reason (the 400's message). Nothing is
 * allocated on the way to "fine".
 */

// RFC 3986 pchar minus pct-encoded (checked apart): unreserved, sub-delims, ':' and '@', plus '/'.
const PATH_OK = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/")
  PATH_OK[c.charCodeAt(0)] = 1;

function hex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/**
 * `target[from..end)` is the path of a request target (origin-form: from 0; absolute-form: after
 * the authority). Returns why it is refused, or undefined.
 */
export function pathProblem(target: string, from: number, end: number): string | undefined {
  for (let i = from; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x25) {
      const a = target.charCodeAt(i + 1);
      const b = target.charCodeAt(i + 2);
      if (i + 2 >= end || !hex(a) || !hex(b)) return 'bad percent-encoding in the path';
      // %2F and %5C, any case: an encoded "/" or "\" would be a segment separator to some servers.
      if ((a === 0x32 && (b | 0x20) === 0x66) || (a === 0x35 && (b | 0x20) === 0x63))
        return 'an encoded slash or backslash (%2F, %5C) in the path';
      // %00: a server in C that decodes it ends the path there.
      if (a === 0x30 && b === 0x30) return 'an encoded NUL (%00) in the path';
      i += 2;
    } else if (c >= 128 || PATH_OK[c] === 0) {
      return `${c === 0x23 ? '"#"' : c === 0x5c ? '"\\"' : `character 0x${c.toString(16).padStart(2, '0')}`} in the path (not RFC 3986)`;
    }
  }
  return undefined;
}

/** Where the path of an origin-form target ends (`?` or the end). */
export function queryStart(target: string): number {
  const q = target.indexOf('?');
  return q === -1 ? target.length : q;
}

/** `name` equals the lower-case `lower`, ASCII case-insensitively, without building a string. */
function sameName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < name.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** `name` reads `folded` when `-` and `_` are left out and case is ignored. */
function foldsTo(name: string, folded: string): boolean {
  let k = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2d || c === 0x5f) continue;
    if (k === folded.length || (c | 0x20) !== folded.charCodeAt(k)) return false;
    k++;
  }
  return k === folded.length;
}

/**
 * A framing header spelt so that only some parsers take it for one: `-` and `_` ignored,
 * it reads `contentlength` or `transferencoding`, but it is not exactly the real name.
 * Also GET and HEAD with a body (a Content-Length other than 0, or a Transfer-Encoding).
 */
export function framingProblem(method: string, raw: readonly string[]): string | undefined {
  const bodiless = method === 'GET' || method === 'HEAD';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // The shortest look-alike is 13 characters (`contentlength`); skip the rest cheaply.
    if (name.length < 13) continue;
    const c0 = name.charCodeAt(0) | 0x20;
    if (c0 === 0x63) {
      // c
      if (sameName(name, 'content-length')) {
        if (bodiless && (raw[i + 1] as string) !== '0') return `${method} with a body (Content-Length)`;
      } else if (foldsTo(name, 'contentlength')) {
        return `header ${JSON.stringify(name)} looks like a framing header`;
      }
    } else if (c0 === 0x74) {
      // t
      if (sameName(name, 'transfer-encoding')) {
        if (bodiless) return `${method} with a body (Transfer-Encoding)`;
      } else if (foldsTo(name, 'transferencoding')) {
        return `header ${JSON.stringify(name)} looks like a framing header`;
      }
    }
  }
  return undefined;
}
