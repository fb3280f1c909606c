/**
 * The outbound HTTP layers and forwarder, composed in this one place (STYLE #3) in the named
 * order of http/order.ts: telemetry → route → timeout → the forwarder to the destination (the
 * mesh's endpoint choice and tunnel sit below it, in the pools it is given).
 */
import { forwarder } from '../http/forward.js';
import type { ForwardDeps } from '../http/forward.js';
import type { Handler, Layer } from '../http/layer.js';
import { composeLayers } from '../http/order.js';

export interface OutboundLayers {
  readonly telemetry?: readonly (Layer | undefined)[];
  readonly route?: Layer;
  readonly timeout?: Layer;
}

export function outboundHandler(deps: ForwardDeps, l: OutboundLayers = {}): Handler {
  return composeLayers({ telemetry: l.telemetry, route: l.route, timeout: l.timeout }, forwarder(deps));
}
