/** Metrics listener: `/metrics` in the Prometheus text format 0.0.4. */
import { METRICS_PATH } from '../contract.js';
import { CONTENT_TYPE } from '../metrics/registry.js';
import type { Registry } from '../metrics/registry.js';
import { controlServer, get, send } from './serve.js';
import type { ControlServer } from './serve.js';

export function metricsServer(registry: Registry): ControlServer {
  return controlServer([get(METRICS_PATH, (_req, res) => send(res, 200, CONTENT_TYPE, registry.render()))]);
}
