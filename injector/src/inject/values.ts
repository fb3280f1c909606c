/**
 * Value parsers only the injector needs (booleans, enums, quantities, images, ratios) for the pod
 * annotations and the mesh config. Everything init or the proxy reads too (ports, CIDRs,
 * durations, names, identities) is in @remora/proxy/values, so that both sides apply one rule.
 * Each returns the parsed value or a short reason, so callers can name the field and the value
 * in one message.
 */
import { bad, ok, parsePort } from '@remora/proxy/values';
import type { Parsed } from '@remora/proxy/values';

export type { Parsed };

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
  if (!m || !parsePort(m[2] as string).ok) return bad('must be host:port');
  return ok(raw);
}

/** Quote a raw value for an error message, shortened so a hostile value cannot flood a log. */
export function showValue(raw: unknown): string {
  const s = typeof raw === 'string' ? raw : (JSON.stringify(raw) ?? String(raw));
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}
