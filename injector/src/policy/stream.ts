/**
 * The policy stream to proxies, on the CA's HTTPS listener next to discovery:
 *   GET /v1/policy?workload=<namespace>/<workload>  → 200, application/x-ndjson, never ends:
 *     {"version":"…","document":"<the whole text>"}   at once (both null: no policy served)
 *     {"version":"…","document":"…"}                  at every accepted change
 *     {}                                              heartbeat every 15 s
 * The workload is what the proxy says it serves; the document is the same for everyone (each
 * proxy applies the selectors itself), so the parameter is only checked and logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CA_PATHS } from '@remora/proxy/contract';
import { parseDnsLabel, parseDnsSubdomain } from '@remora/proxy/values';
import { badRequest } from '../ca/ndjson.js';
import type { StreamHub } from '../ca/ndjson.js';
import type { PolicyStore } from './store.js';

/** `<namespace>/<workload>`, either part empty when the proxy does not know it. */
const emptyOr = (s: string, parse: (s: string) => { ok: boolean }): boolean => s === '' || parse(s).ok;
const USAGE = 'GET /v1/policy?workload=<namespace>/<workload>';

export function policyRoute(
  store: PolicyStore,
): (req: IncomingMessage, res: ServerResponse, streams: StreamHub) => boolean {
  return (req, res, streams) => {
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname !== CA_PATHS.policy) return false;
    const parts = (url.searchParams.get('workload') ?? '').split('/');
    const ok =
      req.method === 'GET' &&
      parts.length === 2 &&
      emptyOr(parts[0] as string, parseDnsLabel) &&
      emptyOr(parts[1] as string, parseDnsSubdomain);
    if (!ok) {
      badRequest(res, USAGE);
      return true;
    }
    const snap = store.current;
    streams.serve(req, res, { version: snap?.version ?? null, document: snap?.document ?? null }, (send) =>
      store.subscribe(send),
    );
    return true;
  };
}
