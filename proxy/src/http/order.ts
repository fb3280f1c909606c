/**
 * The request layers of a listener by name, in the one order they run (outermost first). A new
 * layer takes a name here and so says where it goes; a listener composes whatever subset it has
 * (`composeLayers`), the forwarder innermost. Issue 16 asks for this list; docs/architecture.md
 * prints it.
 */
import type { Handler, Layer } from './layer.js';
import { compose } from './layer.js';

export const LAYER_ORDER = [
  /** the caller's layers: telemetry's span and access log in a sidecar (telemetry/layer.ts) */
  'telemetry',
  /** inbound: L7 authorization, 403 (policy/authz.ts) */
  'authz',
  /** inbound: the port's rate limit, 429 (policy/ratelimit.ts) */
  'rate-limit',
  /** the policy route: `ctx.route`, `ctx.retry` (policy/route.ts) */
  'route',
  /** the route's request and idle timeouts, 504 (policy/timeout.ts) */
  'timeout',
  /** inbound over the mesh: the caller's identity header for the app (tunnel/mesh.ts) */
  'mesh-identity',
] as const;

export type LayerName = (typeof LAYER_ORDER)[number];

/** A listener's layers by name; a missing or undefined entry is not there. A name may hold several. */
export type NamedLayers = { readonly [K in LayerName]?: Layer | readonly (Layer | undefined)[] | undefined };

/** Composes `named` in LAYER_ORDER around `inner` (the forwarder). */
export function composeLayers(named: NamedLayers, inner: Handler): Handler {
  const layers: Layer[] = [];
  for (const name of LAYER_ORDER) {
    const l = named[name];
    if (l === undefined) continue;
    if (typeof l === 'function') layers.push(l);
    else for (const x of l) if (x !== undefined) layers.push(x);
  }
  return compose(layers, inner);
}
