/**
 * remora-proxy's entry point: parse the config (every error listed, exit 2 before any port is
 * bound), start the engine, drain on SIGTERM/SIGINT and exit 0.
 */
import { addonLoadError } from './capture/origdst.js';
import { loadConfig } from './config/load.js';
import type { ProxyConfig } from './config/config.js';
import { assembleEngine } from './assemble.js';
import type { Assembled } from './assemble.js';
import { ConfigError } from './errors.js';
import type { HandedListeners } from './listeners.js';
import { createLogger } from './log.js';
import type { Logger } from './log.js';
import { parseTelemetryConfig } from './telemetry/config.js';

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
    return configInvalid(err);
  }
  const log = createLogger(config.logLevel);
  const addonError = addonLoadError();
  if (addonError !== undefined) {
    log.warn(
      { event: 'addon_missing', err: addonError },
      'SO_ORIGINAL_DST addon not loaded: only configured targets work',
    );
  }
  let built: Assembled;
  try {
    // The mesh's files (trust bundle, discovery) and the policy file are checked here.
    built = await assembleEngine(config, log, { listeners: opts.listeners });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.fatal({ event: 'config_invalid', code: err.code, errors: err.errors }, err.message);
    await flush(log);
    return configInvalid(err);
  }
  const { engine } = built;
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
      await built.shutdown();
      await flush(log);
      resolve(0);
    });
  });
}

/** Every error on stderr, first as one JSON line (machines), then as text (people). */
function configInvalid(err: ConfigError): number {
  process.stderr.write(
    `${JSON.stringify({ level: 'fatal', component: 'remora-proxy', event: 'config_invalid', code: err.code, errors: err.errors })}\n` +
      `remora-proxy: ${err.message}\n`,
  );
  return EXIT_CONFIG;
}

function flush(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()));
}
