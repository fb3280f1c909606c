/**
 * Wires the control-plane rollout (rollout.ts) into a running supervisor: on when the pod has a
 * bundle root (REMORA_ENGINE_BUNDLE_ROOT, the injector's emptyDir) and an injector to ask
 * (REMORA_CA_ADDRESS, REMORA_DISCOVERY_ADDRESS, REMORA_TOKEN_FILE); otherwise off, said once.
 *
 * The rollout, the control-plane client (node:https, TLS, the CSR code) and the bundle fetcher
 * (zlib, the tar reader) are imported only when it is on: a supervisor without an injector never
 * loads them (docs/performance.md, "Memory").
 */
import type { SupervisorConfig } from './config.js';
import type { Logger } from './log.js';
import type { Rollout } from './rollout.js';
import type { Supervisor } from './supervisor.js';

export async function startRollout(
  cfg: SupervisorConfig,
  supervisor: Supervisor,
  log: Logger,
): Promise<Rollout | undefined> {
  const root = cfg.bundleRoot;
  if (root === undefined) return undefined;
  const p = cfg.proxy;
  // ControlPlane.fromConfig asks the same first; asked here so that the module stays unloaded.
  const asked = p.caAddress !== undefined && p.discoveryAddress !== undefined && p.tokenFile !== undefined;
  const cp = asked ? (await import('./control-plane.js')).ControlPlane.fromConfig(p, log) : undefined;
  if (cp === undefined) {
    log.info(
      { event: 'engine_rollout_off', reason: 'no injector configured' },
      'control-plane upgrades off: no CA and discovery address',
    );
    return undefined;
  }
  const [{ ensureBundle }, { Rollout }] = await Promise.all([
    import('./bundle-fetch.js'),
    import('./rollout.js'),
  ]);
  const rollout = new Rollout({
    running: () => String(supervisor.status().version),
    upgrade: (req) => supervisor.upgrade(req),
    lease: async (body) => {
      await cp.ready();
      return cp.lease(body);
    },
    ensure: (version, digest) =>
      ensureBundle({ root, version, digest, download: (d, max) => cp.fetchBundle(d, max) }),
    log,
    metrics: supervisor.metrics,
    onClose: () => cp.close(),
  });
  let lostLogged = false;
  cp.watch(
    (d) => {
      lostLogged = false;
      rollout.onDesired(d);
    },
    (err, retryMs) => {
      // An injector without the stream (older) or down: say it once per outage, not per retry.
      if (lostLogged) return;
      lostLogged = true;
      log.warn(
        { event: 'engine_version_stream_lost', reason: err.message, retryMs },
        'engine version stream lost; reconnecting',
      );
    },
  );
  return rollout;
}
