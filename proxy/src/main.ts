/**
 * remora-proxy's entry point: parse the config (every error listed, exit 2 before any port is
 * bound), start the engine, drain on SIGTERM/SIGINT and exit 0.
 */
import { addonLoadError } from './capture/origdst.js';
import { loadConfig } from './config/load.js';
import type { ProxyConfig } from './config/config.js';
import { Engine } from './engine.js';
import { ConfigError } from './errors.js';
import type { HandedListeners } from './listeners.js';
import { createLogger } from './log.js';
import type { Logger } from './log.js';
import { ProxyMetrics } from './metrics/proxy.js';
import { parseTelemetryConfig } from './telemetry/config.js';
import { setupTelemetry } from './telemetry/setup.js';
import { createMesh } from './tunnel/setup.js';
import type { Mesh } from './tunnel/mesh.js';

export const EXIT_CONFIG = 2;
export const EXIT_START = 1;

export interface MainOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly listeners?: HandedListeners;
}

export async function main(opts: MainOptions = {}): Promise<number> {
  let config: ProxyConfig;
  try {
    config = opts.env === undefined ? loadConfig() : loadConfig(opts.env);
    // The OTEL_* values are validated by telemetry; their errors stop the start the same way.
    const telemetryErrors = parseTelemetryConfig(config).errors;
    if (telemetryErrors.length > 0) throw new ConfigError(telemetryErrors);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(
      `${JSON.stringify({ level: 'fatal', component: 'remora-proxy', event: 'config_invalid', code: err.code, errors: err.errors })}\n` +
        `remora-proxy: ${err.message}\n`,
    );
    return EXIT_CONFIG;
  }
  const log = createLogger(config.logLevel);
  const addonError = addonLoadError();
  if (addonError !== undefined) {
    log.warn(
      { event: 'addon_missing', err: addonError },
      'SO_ORIGINAL_DST addon not loaded: only configured targets work',
    );
  }
  const self = parseTelemetryConfig(config).config.workload;
  const metrics = new ProxyMetrics(undefined, self);
  let mesh: Mesh | undefined;
  try {
    mesh = createMesh(config, log, metrics.registry);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.fatal({ event: 'config_invalid', code: err.code, errors: err.errors }, err.message);
    process.stderr.write(`remora-proxy: ${err.message}\n`);
    await flush(log);
    return EXIT_CONFIG;
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
    mesh,
  });
  try {
    await engine.start();
  } catch (err) {
    log.fatal({ event: 'start_failed', err }, 'cannot start the engine');
    await flush(log);
    return EXIT_START;
  }
  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ event: 'signal', signal }, 'drain requested');
      void engine.drain();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    // Drain from a signal or from the admin API ends the process the same way.
    void engine.stopped.then(async () => {
      await telemetry.shutdown();
      await flush(log);
      resolve(0);
    });
  });
}

function flush(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()));
}
