/**
 * Admin listener (127.0.0.1 only, DESIGN §2): `GET /config` shows the effective config (nothing
 * secret) and the engine's state; `POST /drain` starts a graceful drain.
 */
import { ADMIN_PATHS } from '../contract.js';
import { publicConfig } from '../config/config.js';
import type { ProxyConfig } from '../config/config.js';
import { controlServer, get, post, send } from './serve.js';
import type { ControlServer } from './serve.js';

export interface AdminDeps {
  readonly config: ProxyConfig;
  readonly state: () => Record<string, unknown>;
  readonly drain: () => void;
}

export function adminServer(d: AdminDeps): ControlServer {
  return controlServer([
    get(ADMIN_PATHS.config, (_req, res) =>
      send(
        res,
        200,
        'application/json',
        `${JSON.stringify({ config: publicConfig(d.config), ...d.state() }, null, 2)}\n`,
      ),
    ),
    post(ADMIN_PATHS.drain, (_req, res) => {
      send(res, 202, 'text/plain', 'draining\n');
      d.drain();
    }),
  ]);
}
