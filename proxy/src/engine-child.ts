/**
 * The engine as a supervised child (DESIGN §1, §4): the supervisor forks this file with the
 * data listening sockets as inherited fds. It builds the same engine as main.ts through
 * assemble.ts (config, metrics, mesh, policy, telemetry), opens only the data listeners on
 * those fds (admin, metrics and health belong to the supervisor), and speaks the supervisor
 * protocol through engine-link.ts.
 */
import { assembleEngine } from './assemble.js';
import { publicConfig } from './config/config.js';
import { loadConfig } from './config/load.js';
import { ConfigError } from './errors.js';
import type { HandedListeners } from './listeners.js';
import { createLogger } from './log.js';
import { DeltaMark } from './metrics/registry.js';
import { NO_AUTHZ_PORTS } from './policy/governed.js';
import { runUnderSupervisor } from './supervisor/engine-link.js';
import { parseTelemetryConfig } from './telemetry/config.js';

runUnderSupervisor(async (ctx) => {
  const config = loadConfig();
  const telemetryConfig = parseTelemetryConfig(config);
  if (telemetryConfig.errors.length > 0) throw new ConfigError(telemetryConfig.errors);
  const log = createLogger(config.logLevel).child({ role: 'engine', generation: ctx.generation });
  const listeners: HandedListeners = {};
  if (ctx.fds.inbound !== undefined) listeners.inbound = { fd: ctx.fds.inbound, backlog: ctx.backlog };
  if (ctx.fds.outbound !== undefined) listeners.outbound = { fd: ctx.fds.outbound, backlog: ctx.backlog };
  if (ctx.fds.inbound6 !== undefined) listeners.inbound6 = { fd: ctx.fds.inbound6, backlog: ctx.backlog };
  if (ctx.fds.outbound6 !== undefined) listeners.outbound6 = { fd: ctx.fds.outbound6, backlog: ctx.backlog };
  if (ctx.fds.tunnel !== undefined) listeners.tunnel = { fd: ctx.fds.tunnel, backlog: ctx.backlog };
  if (ctx.fds.tunnel6 !== undefined) listeners.tunnel6 = { fd: ctx.fds.tunnel6, backlog: ctx.backlog };
  const built = await assembleEngine(config, log, { listeners, controls: false });
  const { engine, metrics } = built;
  await engine.start();
  // The supervisor's readiness follows the engine's `ready`: not before a certificate is here
  // (a CA down at start keeps the engine unready; the supervisor's ready bound restarts it)
  // and not before the policy stream answered (or its bound passed).
  await built.whenReady();
  const deltaMark = new DeltaMark();
  return {
    snapshot: () => metrics.registry.snapshot(),
    delta: () => metrics.registry.changed(deltaMark),
    // The supervisor's GET /config shows this beside its own state (docs/supervisor.md): the
    // engine's effective config, listeners, mesh identity and policy, as of the last heartbeat.
    // authzPorts: what the supervisor's degraded relay must not relay past (DESIGN §4).
    status: () => ({
      ...engine.view(),
      policy: built.policy?.holder.status() ?? null,
      authzPorts: built.policy?.holder.authzPorts ?? NO_AUTHZ_PORTS,
      mesh: built.mesh ? { identity: built.mesh.identity ?? null, ready: built.mesh.ready } : null,
      config: publicConfig(config),
    }),
    // The engine's own bound (REMORA_DRAIN_SECONDS) is the one the supervisor sends too.
    drain: async () => {
      await engine.drain();
      await built.shutdown();
      await new Promise<void>((resolve) => log.flush(() => resolve()));
    },
  };
});
