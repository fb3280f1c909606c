/**
 * Outbound detect stage: what each detected protocol does on a destination port. HTTP/1 takes
 * the L7 path. To a destination declared HTTP or governed by L7 policy (`strict`), nothing else
 * is relayed (tcp/detect.ts `routeFor`); elsewhere HTTP/2, TLS (the app's own) and anything else
 * are relayed as opaque TCP (labelled by protocol in metrics).
 */
import { routeFor } from '../tcp/detect.js';
import type { Route, Sniffed } from '../tcp/detect.js';

export function outboundRoute(sniffed: Sniffed, strict: boolean): Route {
  return routeFor(sniffed, strict);
}
