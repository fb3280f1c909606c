/**
 * Address ranges for policy sources (docs/policy.md): IPv4 and IPv6 CIDRs parsed once into 32-bit
 * words, and peer addresses parsed per decision into one reused scratch buffer, so a match is a
 * few integer comparisons and allocates nothing. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
 * what a dual-stack listener reports for an IPv4 peer) is treated as the IPv4 address it carries:
 * `10.0.0.0/8` must not be sidestepped by the listener's socket family.
 */

/** A parsed address: `v4` uses word 0 only; IPv6 uses words 0..3 (network order, high first). */
export interface Address {
  v4: boolean;
  readonly words: Uint32Array;
}

export interface Cidr {
  readonly v4: boolean;
  /** network words, already masked */
  readonly words: Uint32Array;
  readonly prefix: number;
  /** canonical text (`10.0.0.0/8`, `fd00::/8`) */
  readonly text: string;
}

export function newAddress(): Address {
  return { v4: false, words: new Uint32Array(4) };
}

/** Dotted-quad IPv4 between `start` and `end` into a 32-bit number, or -1. No leading zeros. */
function parseV4(s: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (i <= end) {
    let n = 0;
    let digits = 0;
    const first = i;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      n = n * 10 + (c - 0x30);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || n > 255) return -1;
    if (digits > 1 && s.charCodeAt(first) === 0x30) return -1; // 010 is octal in some parsers
    value = value * 256 + n;
    octets++;
    if (i === end) break;
    if (s.charCodeAt(i) !== 0x2e || octets === 4) return -1;
    i++;
  }
  return octets === 4 ? value >>> 0 : -1;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

// Eight 16-bit groups while parsing IPv6; reused (decisions are synchronous).
const groups = new Uint16Array(8);

/**
 * IPv6 text (RFC 4291 §2.2: `::` compression, a trailing dotted IPv4 part, an optional `%zone`
 * which is ignored) into `out.words`. Returns false when it is not an IPv6 address.
 */
function parseV6(s: string, start: number, end: number, out: Address): boolean {
  const zone = s.indexOf('%', start);
  if (zone !== -1 && zone < end) end = zone;
  let n = 0; // groups written
  let gap = -1; // group index where `::` was
  let i = start;
  if (end - start < 2) return false;
  if (s.charCodeAt(i) === 0x3a) {
    if (s.charCodeAt(i + 1) !== 0x3a) return false;
    gap = 0;
    i += 2;
    if (i === end) {
      groups.fill(0);
      return finishV6(0, 0, out);
    }
  }
  while (i < end) {
    if (n === 8) return false;
    // A dotted IPv4 tail takes the last two groups.
    let j = i;
    let value = 0;
    let digits = 0;
    while (j < end) {
      const h = hexValue(s.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      j++;
    }
    if (j < end && s.charCodeAt(j) === 0x2e) {
      if (n > 6) return false;
      const v4 = parseV4(s, i, end);
      if (v4 < 0) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    groups[n++] = value;
    i = j;
    if (i === end) break;
    if (s.charCodeAt(i) !== 0x3a) return false;
    i++;
    if (s.charCodeAt(i) === 0x3a) {
      if (gap !== -1) return false;
      gap = n;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // a trailing single colon
    }
  }
  if (gap === -1 && n !== 8) return false;
  if (gap !== -1 && n === 8) return false; // `::` must stand for at least one group
  return finishV6(n, gap, out);
}

function finishV6(n: number, gap: number, out: Address): boolean {
  if (gap !== -1) {
    const missing = 8 - n;
    for (let k = n - 1; k >= gap; k--) groups[k + missing] = groups[k] as number;
    for (let k = gap; k < gap + missing; k++) groups[k] = 0;
  }
  const w = out.words;
  for (let k = 0; k < 4; k++)
    w[k] = (((groups[2 * k] as number) << 16) | (groups[2 * k + 1] as number)) >>> 0;
  // ::ffff:a.b.c.d is an IPv4 peer on a dual-stack socket.
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) {
    w[0] = w[3] as number;
    w[1] = w[2] = w[3] = 0;
    out.v4 = true;
  } else {
    out.v4 = false;
  }
  return true;
}

/** Parses an address (IPv4, IPv6, mapped IPv4) into `out`; false if it is neither. */
export function parseAddress(s: string, out: Address, start = 0, end = s.length): boolean {
  if (s.indexOf(':', start) !== -1 && s.indexOf(':', start) < end) return parseV6(s, start, end, out);
  const v4 = parseV4(s, start, end);
  if (v4 < 0) return false;
  const w = out.words;
  w[0] = v4;
  w[1] = w[2] = w[3] = 0;
  out.v4 = true;
  return true;
}

function maskWord(prefixBits: number): number {
  if (prefixBits <= 0) return 0;
  if (prefixBits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - prefixBits)) >>> 0;
}

/** `10.0.0.0/8`, `fd00::/8`, a bare address (= /32 or /128): the range, or an error text. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addrEnd = slash === -1 ? text.length : slash;
  const a = newAddress();
  // A CIDR names its family as written: a mapped address with a prefix would be ambiguous.
  if (!parseAddress(text, a, 0, addrEnd) || text.indexOf('%') !== -1) return 'is not an IP address or CIDR';
  const writtenV6 = text.lastIndexOf(':', addrEnd) !== -1;
  if (writtenV6 && a.v4 && slash !== -1)
    return 'an IPv4-mapped address cannot carry a prefix; write the IPv4 CIDR';
  const max = a.v4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return 'has no valid prefix length';
    prefix = Number(p);
    if (prefix > max) return `has a prefix length above ${max}`;
  }
  const w = a.words;
  for (let k = 0; k < 4; k++) {
    const bits = Math.min(32, Math.max(0, prefix - 32 * k));
    w[k] = ((w[k] as number) & maskWord(bits)) >>> 0;
  }
  if (a.v4) w[1] = w[2] = w[3] = 0;
  return { v4: a.v4, words: w, prefix, text: `${formatWords(a.v4, w)}/${prefix}` };
}

/** Canonical text of an address (IPv6 per RFC 5952: lower case, longest zero run as `::`). */
export function formatWords(v4: boolean, w: Uint32Array): string {
  if (v4) {
    const x = w[0] as number;
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  }
  const g: number[] = [];
  for (let k = 0; k < 4; k++) g.push((w[k] as number) >>> 16, (w[k] as number) & 0xffff);
  let bestStart = -1;
  let bestLen = 1;
  for (let k = 0; k < 8;) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && g[e] === 0) e++;
    if (e - k > bestLen) {
      bestStart = k;
      bestLen = e - k;
    }
    k = e;
  }
  const hex = (a: number, b: number) =>
    g
      .slice(a, b)
      .map((x) => x.toString(16))
      .join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** True when `a` (parsed) lies in `c`. */
export function cidrContains(c: Cidr, a: Address): boolean {
  if (c.v4 !== a.v4) return false;
  const cw = c.words;
  const aw = a.words;
  if (c.v4) return (((aw[0] as number) ^ (cw[0] as number)) & maskWord(c.prefix)) >>> 0 === 0;
  let left = c.prefix;
  for (let k = 0; k < 4 && left > 0; k++, left -= 32) {
    if ((((aw[k] as number) ^ (cw[k] as number)) & maskWord(left)) >>> 0 !== 0) return false;
  }
  return true;
}
