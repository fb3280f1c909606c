/**
 * Hop-by-hop header handling (RFC 9110 §7.6.1): Connection and every field it names,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade and Proxy-* never cross the proxy.
 * `Expect` is answered by the proxy itself (100-continue), so it is not forwarded either.
 * Works on Node's flat rawHeaders lists; lower-cases a name only when its length could match.
 *
 * The same pass drops every spelling of the proxy's own `x-remora-peer-identity` (DESIGN §3):
 * only the inbound side of the mesh may set it, after this filter ran (tunnel/mesh.ts). And
 * every spelling of `x-remora-orig-proto` (tunnel/origproto.ts): its value is reported to the
 * HTTP/2 stage, which honours it only on a stream from a peer proxy through the mTLS tunnel.
 */
import { ORIG_PROTO_HEADER, PEER_IDENTITY_HEADER } from '../contract.js';
import {
  F_CONNECTION,
  F_EXPECT,
  F_KEEP_ALIVE,
  F_OTHER,
  F_PROXY,
  F_TE,
  F_TRAILER,
  F_TRANSFER_ENCODING,
  F_UPGRADE,
  F_CONTENT_LENGTH,
  F_DATE,
  sameName,
} from '../http1/head.js';
import type { RequestHead, ResponseHead } from '../http1/head.js';

/** What the request filter learned on its single pass. */
export interface RequestHeadInfo {
  /** the request carries a body (Content-Length > 0 or Transfer-Encoding) */
  hasBody: boolean;
  /** value of the Upgrade header, for the tunnelling path */
  upgrade: string | undefined;
  /** value of `x-remora-orig-proto` (dropped from the fields), if the request carried it */
  origProto?: string | undefined;
}

const PEER_LENGTH = PEER_IDENTITY_HEADER.length;
const ORIG_LENGTH = ORIG_PROTO_HEADER.length;

/** `name` is `header` in any case, with `_` or `-` between its words. Allocation-free. */
function isSpelling(name: string, header: string): boolean {
  const n = header.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const want = header.charCodeAt(i);
    const c = name.charCodeAt(i);
    if (want === 0x2d) {
      if (c !== 0x2d && c !== 0x5f) return false;
    } else if ((c | 0x20) !== want) {
      return false;
    }
  }
  return true;
}

/** True for every spelling of `x-remora-orig-proto` (as `isPeerIdentityHeader`). */
export function isOrigProtoHeader(name: string): boolean {
  return isSpelling(name, ORIG_PROTO_HEADER);
}

/**
 * True for `x-remora-peer-identity` in any case and with any mix of `_` and `-` between its
 * words: CGI, WSGI, Rack and PHP fold `-` into `_` and upper-case names, so an app reads
 * `x_remora_peer_identity` as the very same variable. The one test for the header, on every path.
 * Allocation-free: compares character codes (`| 0x20` lower-cases an ASCII letter).
 */
export function isPeerIdentityHeader(name: string): boolean {
  return isSpelling(name, PEER_IDENTITY_HEADER);
}

function isHopByHop(lower: string): boolean {
  switch (lower.length) {
    case 2:
      return lower === 'te';
    case 6:
      if (lower === 'expect') return true;
      break;
    case 7:
      if (lower === 'trailer' || lower === 'upgrade') return true;
      break;
    case 10:
      if (lower === 'connection' || lower === 'keep-alive') return true;
      break;
    case 17:
      if (lower === 'transfer-encoding') return true;
      break;
    default:
  }
  // Proxy-* of any length (a 7- or 10-char one such as `Proxy-Auth` once passed)
  return lower.charCodeAt(0) === 0x70 && lower.startsWith('proxy-');
}

/** Lengths of the names we act on; a name of any other length is kept without lower-casing. */
function mayMatter(name: string): boolean {
  const n = name.length;
  if (
    n === 2 ||
    n === 6 ||
    n === 7 ||
    n === 10 ||
    n === 14 ||
    n === 17 ||
    n === PEER_LENGTH ||
    n === ORIG_LENGTH
  )
    return true;
  const c = name.charCodeAt(0);
  return c === 0x70 || c === 0x50; // p / P: Proxy-*
}

/**
 * The field names Connection lists (lower case), or undefined for none. keep-alive and upgrade
 * are left out (those fields are hop-by-hop anyway, and a bare `Connection: keep-alive` then
 * costs no lower-casing of every name); close too unless `withClose` (a response's field named
 * close is dropped, as it always was).
 */
function connectionTokens(raw: readonly string[], withClose = false): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 10 && name.toLowerCase() === 'connection')
      named = addTokens(raw[i + 1] as string, withClose, named);
  }
  return named;
}

/** The names one Connection value lists, added to `named` (see connectionTokens). */
function addTokens(
  value: string,
  withClose: boolean,
  named: Set<string> | undefined,
): Set<string> | undefined {
  // The common `Connection: keep-alive` (or `close`) names no field: no split, no set.
  if (sameName(value, 'keep-alive') || (!withClose && sameName(value, 'close'))) return named;
  for (const t of value.split(',')) {
    const tok = t.trim().toLowerCase();
    if (tok !== '' && (withClose || tok !== 'close') && tok !== 'keep-alive' && tok !== 'upgrade')
      (named ??= new Set()).add(tok);
  }
  return named;
}

/**
 * Copies the end-to-end fields of a request's rawHeaders into `out` (flat list) and reports
 * whether a body follows and what Upgrade asks for. Every spelling of the peer identity header
 * is dropped (`isPeerIdentityHeader`): this is the one filter every request passes, plain or
 * upgrade, inbound, outbound or through the tunnel, with or without a mesh.
 */
export function filterRequestHeaders(
  raw: readonly string[],
  out: string[],
  info: RequestHeadInfo,
  /** if given, gets the index in `raw` of each field copied to `out`, in order, twice (one per entry of `out`) */
  kept?: number[],
): void {
  const named = connectionTokens(raw);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (mayMatter(name)) {
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        if (value !== '0') info.hasBody = true;
      } else if (lower.length === PEER_LENGTH && isPeerIdentityHeader(lower)) {
        continue;
      } else if (lower.length === ORIG_LENGTH && isOrigProtoHeader(lower)) {
        info.origProto = value;
        continue;
      } else if (isHopByHop(lower)) {
        if (lower === 'transfer-encoding') info.hasBody = true;
        // Several fields are one list (RFC 9110 §5.3): the h2c check must see every token.
        else if (lower === 'upgrade')
          info.upgrade = info.upgrade === undefined ? value : `${info.upgrade}, ${value}`;
        continue;
      }
      if (named !== undefined && named.has(lower)) continue;
    } else if (named !== undefined && named.has(name.toLowerCase())) {
      continue;
    }
    out.push(name, value);
    kept?.push(i, i);
  }
}

/**
 * Copies the end-to-end fields of an upstream response (the dispatch contract's flat string
 * list) into a flat list for the response's writeHead, which adds its own framing
 * (Content-Length or chunked).
 */
export function filterResponseHeaders(raw: readonly string[], out: string[]): void {
  const named = connectionTokens(raw, true);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (mayMatter(name) || named !== undefined) {
      const lower = name.toLowerCase();
      if (isHopByHop(lower) || (named !== undefined && named.has(lower))) continue;
      // An app's answer never carries the proxies' marker either.
      if (lower.length === ORIG_LENGTH && isOrigProtoHeader(lower)) continue;
    }
    out.push(name, raw[i + 1] as string);
  }
}

/**
 * filterResponseHeaders for a head the HTTP/1 codec parsed, told what each field is by the
 * codec's `kinds` (kinds[i] for raw[2i], http1/head.ts F_*): the same fields out, and no name
 * lower-cased unless Connection names a field (the codec matched the names on their bytes).
 */
export function filterResponseFields(raw: readonly string[], kinds: Uint8Array, out: string[]): void {
  const n = raw.length >> 1;
  let named: Set<string> | undefined;
  for (let f = 0; f < n; f++)
    if (kinds[f] === F_CONNECTION) named = addTokens(raw[f * 2 + 1] as string, true, named);
  for (let f = 0; f < n; f++) {
    const name = raw[f * 2] as string;
    const k = kinds[f] as number;
    if (k === F_OTHER) {
      if (name.length === ORIG_LENGTH && isOrigProtoHeader(name)) continue;
    } else if (hopByHopKind(k)) continue;
    if (named !== undefined && named.has(name.toLowerCase())) continue;
    out.push(name, raw[f * 2 + 1] as string);
  }
}

/** What keptResponseLines saw among the lines it kept. */
export interface KeptFacts {
  contentLength: boolean;
  date: boolean;
}

/**
 * filterResponseFields on the head itself, for a stage that writes HTTP/1 (h1server): the kept
 * field lines as they came (original spelling and whitespace; the codec refused obs-fold, bare
 * CR/LF and control characters), cut as runs of whole lines out of the head's decoded text, so
 * a head whose dropped fields are few is a few slices, not 2n strings rebuilt. With
 * `statusLine`, the first run starts at the status line (the caller found it fit to forward).
 * Same fields out as filterResponseFields (headers.test.ts holds them to one reference).
 */
export function keptResponseLines(h: ResponseHead, statusLine: boolean, facts: KeptFacts): string {
  const kinds = h.kinds;
  const n = h.count;
  // Connection's tokens other than close/keep-alive/upgrade (h.named) name hop-by-hop fields;
  // filterResponseFields, on strings, also counts `close` (a field named `Close`). The codec
  // splits a token at any non-tchar, the string filter at commas only: on a malformed value
  // (`a b`) this drops fields `a` and `b`, which the string filter forwards. (Both facts come
  // from Connection fields only.)
  const named = h.named.length > 0;
  const close = h.connectionClose;
  facts.contentLength = false;
  facts.date = false;
  let out = '';
  let open = statusLine ? h.start : -1;
  for (let f = 0; f < n; f++) {
    const k = kinds[f] as number;
    let keep: boolean;
    if (k === F_OTHER) keep = !(h.nameLength(f) === ORIG_LENGTH && isOrigProtoHeader(h.name(f)));
    else keep = !hopByHopKind(k);
    if (keep && ((named && h.namedByConnection(f)) || (close && h.namedClose(f)))) keep = false;
    if (keep) {
      if (k === F_CONTENT_LENGTH) facts.contentLength = true;
      else if (k === F_DATE) facts.date = true;
      if (open === -1) open = h.lineStart(f);
    } else if (open !== -1) {
      out += h.textAt(open, h.lineStart(f));
      open = -1;
    }
  }
  if (open !== -1) out += h.textAt(open, h.end - 2);
  return out;
}

/**
 * CheckedHead's `lines`, in place of what filterRequestHeaders put in `kept` (each forwarded
 * field's index in the head's flat list, twice): where its line starts and ends (through its
 * CRLF) in the head's text.
 */
export function keptRequestLines(h: RequestHead, kept: number[]): number[] {
  const base = h.start;
  for (let k = 0; k < kept.length; k += 2) {
    const f = (kept[k] as number) >> 1;
    kept[k] = h.lineStart(f) - base;
    kept[k + 1] = h.lineEnd(f) - base;
  }
  return kept;
}

/** isHopByHop's names, as the codec told them (Proxy-* of any length included). */
function hopByHopKind(k: number): boolean {
  return (
    k === F_CONNECTION ||
    k === F_KEEP_ALIVE ||
    k === F_TE ||
    k === F_TRAILER ||
    k === F_UPGRADE ||
    k === F_TRANSFER_ENCODING ||
    k === F_PROXY ||
    k === F_EXPECT
  );
}

/**
 * Fields a trailer section may not carry across the proxy (RFC 9110 §6.5.1): what frames or
 * routes a message, authenticates, modifies the request, controls the response or describes
 * the content. A recipient must not merge them into the head, and an app that does would act
 * on fields sent after the checks ran. (Content-Length, Transfer-Encoding and Host are refused
 * by the codec before they get here.)
 */
const NOT_IN_TRAILERS = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'authorization',
  'www-authenticate',
  'authentication-info',
  'cookie',
  'set-cookie',
  'content-type',
  'content-encoding',
  'content-range',
  'content-location',
  'cache-control',
  'expires',
  'age',
  'date',
  'location',
  'retry-after',
  'vary',
  'range',
  'max-forwards',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
]);

/**
 * Copies the fields of a trailer section (flat, as the codec parsed and checked them) that may
 * cross the proxy into `out`: hop-by-hop fields (Connection and what a trailer Connection
 * names, Keep-Alive, TE, Trailer, Upgrade, Proxy-*, Expect), the peer identity in any spelling,
 * and the fields of NOT_IN_TRAILERS are dropped. The same filter in both directions.
 */
export function filterTrailers(raw: readonly string[], out: string[]): void {
  // (the tokens it leaves out, close/keep-alive/upgrade, name no field that could pass anyway)
  const named = connectionTokens(raw);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || NOT_IN_TRAILERS.has(lower) || isPeerIdentityHeader(lower)) continue;
    if (named !== undefined && named.has(lower)) continue;
    out.push(name, raw[i + 1] as string);
  }
}
