/**
 * Inbound detect stage: what each detected protocol does. HTTP/1 takes the L7 path; HTTP/2,
 * TLS and anything else are relayed as opaque TCP for now (labelled by protocol in metrics).
 */
import type { Protocol } from '../metrics/proxy.js';
import type { Route } from '../tcp/stack.js';

export function inboundRoute(protocol: Protocol): Route {
  return protocol === 'http1' ? 'http' : 'relay';
}
