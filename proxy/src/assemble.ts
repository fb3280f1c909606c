/**
 * Builds one engine from a parsed config, the same way for the engine alone (main.ts) and the
 * supervised engine (engine-child.ts): metrics, mesh (mTLS, discovery), policy, telemetry.
 * Everything that can be wrong with the config is found here before anything listens and
 * thrown as one ConfigError listing every problem (DESIGN §8).
 */
import type { ProxyConfig } from './config/config.js';
import { Engine } from './engine.js';
import { ConfigError } from './errors.js';
import type { HandedListeners } from './listeners.js';
import type { Logger } from './log.js';
import { registerProcessMetrics } from './metrics/process.js';
import { ProxyMetrics } from './metrics/proxy.js';
import { createPolicy } from './policy/setup.js';
import type { PolicyRuntime } from './policy/setup.js';
import { parseTelemetryConfig } from './telemetry/config.js';
import { setupTelemetry } from './telemetry/setup.js';
import { createMesh, credentialsOf } from './tunnel/setup.js';
import type { Mesh } from './tunnel/mesh.js';

export interface AssembleOptions {
  readonly listeners?: HandedListeners;
  /** open the admin, metrics and health servers (a supervised engine leaves them to the supervisor) */
  readonly controls?: boolean;
}

export interface Assembled {
  readonly engine: Engine;
  readonly metrics: ProxyMetrics;
  readonly mesh: Mesh | undefined;
  readonly policy: PolicyRuntime | undefined;
  /** Ready to serve traffic: the workload certificate is here and the policy source answered. */
  whenReady(): Promise<void>;
  /** After the engine drained: stop following policy, flush telemetry. */
  shutdown(): Promise<void>;
}

export async function assembleEngine(
  config: ProxyConfig,
  log: Logger,
  opts: AssembleOptions = {},
): Promise<Assembled> {
  // This workload's own side of the source/destination labels.
  const metrics = new ProxyMetrics(undefined, parseTelemetryConfig(config).config.workload, {
    maxPeers: config.metricsMaxPeers,
  });
  // What this process costs (CPU, memory, PSS, event loop), read at scrape/heartbeat time.
  registerProcessMetrics(metrics.registry, 'engine');
  const errors: string[] = [];
  let mesh: Mesh | undefined;
  let policy: PolicyRuntime | undefined;
  try {
    mesh = createMesh(config, log, metrics.registry);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(...err.errors);
  }
  try {
    const identity = mesh?.workloadIdentity;
    policy = createPolicy(
      config,
      log,
      metrics.registry,
      identity !== undefined ? credentialsOf(identity) : undefined,
    );
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(...err.errors);
  }
  if (errors.length > 0) {
    mesh?.close();
    policy?.close();
    throw new ConfigError(errors);
  }
  // Ready only once the workload certificate is here; the CA is retried meanwhile.
  mesh?.start();
  const telemetry = await setupTelemetry(config, log, metrics.registry);
  const engine = new Engine({
    config,
    log,
    listeners: opts.listeners,
    metrics,
    layers: telemetry.layers,
    wrapRelay: telemetry.wrapRelay,
    controls: opts.controls,
    mesh,
    policy: policy?.holder,
  });
  return {
    engine,
    metrics,
    mesh,
    policy,
    whenReady: async () => {
      await mesh?.whenReady();
      await policy?.holder.whenReady();
    },
    shutdown: async () => {
      policy?.close();
      await telemetry.shutdown();
    },
  };
}
