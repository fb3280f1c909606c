/**
 * Value parsers shared by the pod annotations and the mesh config. Each returns the parsed value
 * or a short reason (a string starting with "must ..."), so callers can name the field and the
 * value in one message.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

export function parseBool(raw: string): Parsed<boolean> {
  if (raw === 'true') return ok(true);
  if (raw === 'false') return ok(false);
  return bad('must be "true" or "false"');
}

export function parseEnum<T extends string>(raw: string, allowed: readonly T[]): Parsed<T> {
  return (allowed as readonly string[]).includes(raw)
    ? ok(raw as T)
    : bad(`must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
}

/** Comma-separated TCP ports (1..65535); an empty string is an empty list. */
export function parsePorts(raw: string): Parsed<number[]> {
  const out: number[] = [];
  for (const part of raw.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) {
      return bad(`must be a comma-separated list of ports 1-65535 (bad entry "${p}")`);
    }
    out.push(Number(p));
  }
  return ok([...new Set(out)]);
}

/**
 * Ports and inclusive ranges (`3306,5432,9000-9010`), as the proxy's REMORA_OPAQUE_PORTS reads
 * them: each entry kept in its canonical text (`09000-9010` → `9000-9010`), duplicates dropped.
 */
export function parsePortRanges(raw: string): Parsed<string[]> {
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(p);
    const from = m ? Number(m[1]) : NaN;
    const to = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || from < 1 || to > 65535 || from > to) {
      return bad(
        `must be a comma-separated list of ports 1-65535 or ranges like 9000-9010 (bad entry "${p}")`,
      );
    }
    out.push(from === to ? String(from) : `${from}-${to}`);
  }
  return ok([...new Set(out)]);
}

/** Like parsePorts, or `*` for every port. */
export function parsePortsOrAll(raw: string): Parsed<number[] | '*'> {
  return raw.trim() === '*' ? ok('*') : parsePorts(raw);
}

export function isCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const prefix = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix)) return false;
  const n = Number(prefix);
  if (isIPv4(ip)) return n <= 32;
  if (isIPv6(ip)) return n <= 128;
  return false;
}

/** Comma-separated IPv4/IPv6 CIDRs (`10.0.0.0/8`, `fd00::/8`). */
export function parseCidrs(raw: string): Parsed<string[]> {
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const c = part.trim();
    if (c === '') continue;
    if (!isCidr(c)) return bad(`must be a comma-separated list of CIDRs like 10.0.0.0/8 (bad entry "${c}")`);
    out.push(c);
  }
  return ok([...new Set(out)]);
}

export function parseCidrsOrAll(raw: string): Parsed<string[] | '*'> {
  return raw.trim() === '*' ? ok('*') : parseCidrs(raw);
}

const QUANTITY = /^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const SUFFIX: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A Kubernetes resource quantity (`100m`, `0.5`, `64Mi`, `1e3`), non-negative. */
export function parseQuantity(raw: string): Parsed<{ text: string; value: number }> {
  const m = QUANTITY.exec(raw);
  if (!m) return bad('must be a Kubernetes quantity such as "100m", "0.5", "64Mi" or "1Gi"');
  const suffix = m[2] ?? '';
  const mult = suffix === '' ? 1 : /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix];
  return ok({ text: raw, value: Number(m[1]) * (mult ?? 1) });
}

/** Integer seconds in [0, max]. */
export function parseSeconds(raw: string, max: number): Parsed<number> {
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > max)
    return bad(`must be an integer number of seconds 0-${max}`);
  return ok(Number(raw));
}

/** A sampling ratio in [0, 1]. */
export function parseRatio(raw: string): Parsed<number> {
  if (!/^(?:\d+(?:\.\d+)?|\.\d+)$/.test(raw)) return bad('must be a number between 0 and 1');
  const n = Number(raw);
  return n >= 0 && n <= 1 ? ok(n) : bad('must be a number between 0 and 1');
}

// registry[:port]/path[:tag][@sha256:digest]; lower-case path components as the OCI spec says.
const IMAGE =
  /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

export function parseImage(raw: string): Parsed<string> {
  return raw.length <= 512 && IMAGE.test(raw)
    ? ok(raw)
    : bad('must be an image reference such as "registry.example/remora-proxy:1.2.3"');
}

/** `host:port` with a DNS name or IP and a port 1-65535. */
export function parseHostPort(raw: string): Parsed<string> {
  const m = /^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+):(\d{1,5})$/.exec(raw);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return bad('must be host:port');
  return ok(raw);
}

/** Quote a raw value for an error message, shortened so a hostile value cannot flood a log. */
export function showValue(raw: unknown): string {
  const s = typeof raw === 'string' ? raw : (JSON.stringify(raw) ?? String(raw));
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}
