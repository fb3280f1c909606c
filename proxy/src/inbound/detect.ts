/**
 * Inbound detect stage: what each detected protocol does on a port of the app. HTTP/1 takes the
 * L7 path. On a port declared HTTP or governed by L7 policy (`strict`), nothing else is relayed
 * (tcp/detect.ts `routeFor`); elsewhere HTTP/2, TLS and anything else are relayed as opaque TCP
 * (labelled by protocol in metrics).
 */
import { routeFor } from '../tcp/detect.js';
import type { Route, Sniffed } from '../tcp/detect.js';

export function inboundRoute(sniffed: Sniffed, strict: boolean): Route {
  return routeFor(sniffed, strict);
}
