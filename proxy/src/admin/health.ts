/**
 * Health listener: `/healthz/ready` is 200 once every listener is up and the engine is not
 * draining, 503 otherwise; `/healthz/live` is 200 while the process serves at all.
 */
import { HEALTH_PATHS } from '../contract.js';
import { controlServer, get, send } from './serve.js';
import type { ControlServer } from './serve.js';

export function healthServer(ready: () => boolean, why: () => string): ControlServer {
  return controlServer([
    get(HEALTH_PATHS.ready, (_req, res) => {
      if (ready()) send(res, 200, 'text/plain', 'ready\n');
      else send(res, 503, 'text/plain', `not ready: ${why()}\n`);
    }),
    get(HEALTH_PATHS.live, (_req, res) => send(res, 200, 'text/plain', 'live\n')),
  ]);
}
