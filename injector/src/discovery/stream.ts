/**
 * The discovery stream to proxies, on the CA's HTTPS listener:
 *   GET /v1/discovery?dest=10.96.0.10:80   → 200, application/x-ndjson, chunked, never ends:
 *     {"dest":"10.96.0.10:80","endpoints":[...]}   at once (null: not a known service)
 *     {"dest":...,"endpoints":[...]}               at every change of that destination
 *     {}                                           heartbeat every 15 s
 * A proxy subscribes when its app first dials a destination (on demand, as Linkerd does), one
 * stream per destination; after a reconnect the first line is a full snapshot, so resync needs
 * no version bookkeeping. Only authenticated proxies get a stream, within the caps of
 * ca/ndjson.ts (StreamHub).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CA_PATHS } from '@remora/proxy/contract';
import { badRequest } from '../ca/ndjson.js';
import type { StreamHub } from '../ca/ndjson.js';
import type { DiscoveryStore } from './store.js';

const DEST = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/;

export function discoveryRoute(
  store: DiscoveryStore,
): (req: IncomingMessage, res: ServerResponse, streams: StreamHub) => boolean {
  return (req, res, streams) => {
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname !== CA_PATHS.discovery) return false;
    const dest = url.searchParams.get('dest') ?? '';
    if (req.method !== 'GET' || !DEST.test(dest)) {
      badRequest(res, 'GET /v1/discovery?dest=<ip:port>');
      return true;
    }
    streams.serve(req, res, { dest, endpoints: store.get(dest) }, (send) =>
      store.subscribe(dest, (endpoints) => send({ dest, endpoints })),
    );
    return true;
  };
}
