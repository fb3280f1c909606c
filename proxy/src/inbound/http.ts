/**
 * The inbound HTTP stack, composed in this one place (STYLE #3): layers run outside-in, the
 * forwarder to the app is innermost. Telemetry and policy add their layer to `layers` here.
 */
import { forwarder } from '../http/forward.js';
import type { ForwardDeps } from '../http/forward.js';
import { compose } from '../http/layer.js';
import type { Handler, Layer } from '../http/layer.js';

export function inboundHandler(deps: ForwardDeps, extra: readonly (Layer | undefined)[] = []): Handler {
  const layers: Layer[] = [];
  for (const l of extra) if (l !== undefined) layers.push(l);
  return compose(layers, forwarder(deps));
}
