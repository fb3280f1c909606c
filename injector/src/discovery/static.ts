/**
 * Static-file discovery source (REMORA_DISCOVERY_FILE): the proxy's file format
 * (`{"services": {"ip:port": {"endpoints": [{ip, port, meshed, identity}]}}}`), re-read when it
 * changes; a bad version is logged and the last good map kept.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { isPort, parseIpAddress, parsePort, parseSpiffeId } from '@remora/proxy/values';
import type { Logger } from 'pino';
import { labelFields } from './store.js';
import type { DiscoveryStore, WireEndpoint } from './store.js';

/**
 * IPv6 in its canonical text form (lower case, `::` compressed), as the proxy keys a
 * destination (from the kernel's original destination): `[FD00:0::A]:80` in a file must still
 * answer a subscription to `[fd00::a]:80`. Dotted forms (`::ffff:1.2.3.4`) are kept as written.
 */
function canonicalIp(ip: string): string {
  return ip.includes(':') && !ip.includes('.') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

function canonicalDest(dest: string): string {
  if (!dest.startsWith('[')) return dest;
  const end = dest.indexOf(']');
  return `[${canonicalIp(dest.slice(1, end))}]${dest.slice(end + 1)}`;
}

export function parseServices(text: string): Map<string, WireEndpoint[]> {
  const doc = JSON.parse(text) as { services?: unknown } | null;
  const services = doc?.services;
  if (services === null || typeof services !== 'object' || Array.isArray(services))
    throw new Error('needs an object "services"');
  const out = new Map<string, WireEndpoint[]>();
  const errors: string[] = [];
  for (const [dest, svc] of Object.entries(services as Record<string, unknown>)) {
    const eps = (svc as { endpoints?: unknown } | null)?.endpoints;
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(dest);
    if (
      !m ||
      !parseIpAddress((m[1] ?? m[2]) as string).ok ||
      !parsePort(m[3] as string).ok ||
      !Array.isArray(eps)
    ) {
      errors.push(`service ${JSON.stringify(dest)}: needs "ip:port" and an "endpoints" array`);
      continue;
    }
    const list: WireEndpoint[] = [];
    for (const e of eps as Record<string, unknown>[]) {
      const ok =
        typeof e?.ip === 'string' &&
        parseIpAddress(e.ip).ok &&
        isPort(e.port) &&
        (e.meshed !== true || (typeof e.identity === 'string' && parseSpiffeId(e.identity).ok));
      if (!ok) errors.push(`service ${dest}: bad endpoint ${JSON.stringify(e)}`);
      else
        list.push({
          ip: canonicalIp(e.ip as string),
          port: e.port as number,
          meshed: e.meshed === true,
          ...(e.meshed === true ? { identity: e.identity as string } : {}),
          ...labelFields(e),
        });
    }
    out.set(canonicalDest(dest), list);
  }
  if (errors.length > 0) throw new Error(errors.join('; '));
  return out;
}

/** Loads `file` into `store` now (throws when bad) and on every change; returns the stop function. */
export function watchStaticDiscovery(
  file: string,
  store: DiscoveryStore,
  log: Logger,
  pollMs = 500,
): () => void {
  store.replace(parseServices(readFileSync(file, 'utf8')));
  const reload = (): void => {
    try {
      const changed = store.replace(parseServices(readFileSync(file, 'utf8')));
      log.info({ event: 'discovery_reloaded', file, changed: changed.length }, 'discovery file reloaded');
    } catch (err) {
      log.warn(
        { event: 'discovery_invalid', file, err: (err as Error).message },
        'discovery file invalid: kept the last good map',
      );
    }
  };
  watchFile(file, { interval: pollMs, persistent: false }, reload);
  return () => unwatchFile(file, reload);
}
