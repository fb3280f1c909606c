/**
 * The inbound HTTP layers and forwarder, composed in this one place (STYLE #3) in the named
 * order of http/order.ts: telemetry → authz → rate-limit → route → timeout → mesh-identity →
 * the forwarder to the app.
 */
import { forwarder } from '../http/forward.js';
import type { ForwardDeps } from '../http/forward.js';
import type { Handler, Layer } from '../http/layer.js';
import { composeLayers } from '../http/order.js';

export interface InboundLayers {
  readonly telemetry?: readonly (Layer | undefined)[];
  readonly authz?: Layer;
  readonly rateLimit?: Layer;
  readonly route?: Layer;
  readonly timeout?: Layer;
  readonly meshIdentity?: Layer;
}

export function inboundHandler(deps: ForwardDeps, l: InboundLayers = {}): Handler {
  return composeLayers(
    {
      telemetry: l.telemetry,
      authz: l.authz,
      'rate-limit': l.rateLimit,
      route: l.route,
      timeout: l.timeout,
      'mesh-identity': l.meshIdentity,
    },
    forwarder(deps),
  );
}
