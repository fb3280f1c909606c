/**
 * The supervisor's configuration: the engine's ProxyConfig (ports, targets, failure and mTLS
 * mode, drain bound; config/config.ts) plus the few settings only the supervisor reads. Parsed
 * once, pure, every error listed (STYLE #4); same precedence as the engine: env over file.
 */
import { ENV, POD_PATHS } from '../contract.js';
import { parseConfig } from '../config/config.js';
import { parseTelemetryConfig } from '../telemetry/config.js';
import type { ProxyConfig } from '../config/config.js';
import { ConfigError } from '../errors.js';
import { UpgradeRequestError } from './errors.js';
import { parseAppProbes } from './probes.js';
import type { AppProbe } from './probes.js';

export interface SupervisorConfig {
  readonly proxy: ProxyConfig;
  /** Engine versions for upgrades live in `<bundleRoot>/<version>/engine.js`. */
  readonly bundleRoot: string | undefined;
  readonly adminTokenFile: string;
  /** fail-closed/restart: connections wait this long for an engine, then are reset. */
  readonly engineWaitMs: number;
  /** A starting engine that is not ready within this is killed (restart) or abandoned (upgrade). */
  readonly engineReadyMs: number;
  /** restart mode: liveness fails after this long without a ready engine. */
  readonly restartGraceMs: number;
  readonly appProbes: ReadonlyMap<string, AppProbe>;
  /** Keep a pre-forked engine waiting to replace a crashed one (costs one engine's memory). */
  readonly standby: boolean;
  /**
   * POST /quitquitquit without the admin token (REMORA_QUIT_WITHOUT_TOKEN, the pod's
   * remora.dev/quit-without-token): only for legacy-ordering Jobs; off, the app cannot stop us.
   */
  readonly quitWithoutToken: boolean;
}

export const SUPERVISOR_DEFAULTS = Object.freeze({
  engineWaitSeconds: 10,
  engineReadySeconds: 15,
  restartGraceSeconds: 10,
});

/** Settings the supervisor owns: an upgrade cannot change them (the sockets are already bound). */
const NOT_AT_UPGRADE: ReadonlySet<keyof typeof ENV> = new Set([
  'inboundPort',
  'outboundPort',
  'tunnelPort',
  'healthPort',
  'metricsPort',
  'adminPort',
  'bindHost',
  'failureMode',
  'mtlsMode',
  'adminTokenFile',
  'appProbes',
  'configFile',
  'engineBundleRoot',
  'engineWaitSeconds',
  'engineReadySeconds',
  'restartGraceSeconds',
  'engineStandby',
  'quitWithoutToken',
  // the supervisor's degraded relay delivers by the same list: keep the two in agreement
  'localhostInboundPorts',
] as const);

type Env = Readonly<Record<string, string | undefined>>;

function fileObject(contents: string | undefined): Record<string, unknown> {
  if (contents === undefined) return {};
  try {
    const v: unknown = JSON.parse(contents);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {}; // parseConfig reports it
  }
}

export function parseSupervisorConfig(env: Env, fileContents?: string): SupervisorConfig {
  const errors: string[] = [];
  let proxy: ProxyConfig | undefined;
  try {
    proxy = parseConfig(env, fileContents);
    // OTEL_* are validated by telemetry: a bad value must stop the start here, not loop the engine.
    errors.push(...parseTelemetryConfig(proxy).errors);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(...err.errors);
  }
  const file = fileObject(fileContents);
  const raw = (key: keyof typeof ENV): { value: unknown; where: string } => {
    const e = env[ENV[key]];
    if (e !== undefined && e !== '') return { value: e, where: ENV[key] };
    return { value: file[key], where: `${ENV.configFile}:${key}` };
  };
  const seconds = (key: keyof typeof ENV, def: number): number => {
    const { value, where } = raw(key);
    if (value === undefined || value === null) return def * 1000;
    const n = typeof value === 'number' ? value : String(value).trim() === '' ? NaN : Number(value);
    if (!Number.isFinite(n) || n < 0 || n > 3600) {
      errors.push(`${where}: not a number of seconds (0..3600): ${JSON.stringify(value)}`);
      return def * 1000;
    }
    return Math.round(n * 1000);
  };
  const str = (key: keyof typeof ENV): string | undefined => {
    const { value, where } = raw(key);
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value.trim() === '') {
      errors.push(`${where}: must be a non-empty string: ${JSON.stringify(value)}`);
      return undefined;
    }
    return value;
  };
  const engineWaitMs = seconds('engineWaitSeconds', SUPERVISOR_DEFAULTS.engineWaitSeconds);
  const engineReadyMs = seconds('engineReadySeconds', SUPERVISOR_DEFAULTS.engineReadySeconds);
  const restartGraceMs = seconds('restartGraceSeconds', SUPERVISOR_DEFAULTS.restartGraceSeconds);
  if (engineReadyMs === 0) errors.push(`${ENV.engineReadySeconds}: must be more than 0`);
  const bundleRoot = str('engineBundleRoot');
  const onOff = (key: keyof typeof ENV): boolean => {
    const { value, where } = raw(key);
    if (value === undefined || value === null) return false;
    const v = String(value).trim().toLowerCase();
    if (v === 'on' || v === 'true' || v === '1') return true;
    if (v === 'off' || v === 'false' || v === '0') return false;
    errors.push(`${where}: must be on or off: ${JSON.stringify(value)}`);
    return false;
  };
  const standby = onOff('engineStandby');
  const quitWithoutToken = onOff('quitWithoutToken');
  const adminTokenFile = str('adminTokenFile') ?? POD_PATHS.adminTokenFile;
  let appProbes: ReadonlyMap<string, AppProbe> = new Map();
  try {
    appProbes = parseAppProbes(ENV.appProbes, env[ENV.appProbes]);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(...err.errors);
  }
  if (errors.length > 0 || proxy === undefined) throw new ConfigError(errors);
  return Object.freeze({
    proxy,
    bundleRoot,
    adminTokenFile,
    engineWaitMs,
    engineReadyMs,
    restartGraceMs,
    appProbes,
    standby,
    quitWithoutToken,
  });
}

/**
 * Checks an upgrade's `config` (config-file field names, e.g. `{"logLevel": "debug"}`) against
 * the same parser the engine uses, and returns it as environment variables for the new engine
 * (env wins over the file, so the override holds). Throws UpgradeRequestError with every problem.
 */
export function checkOverrides(
  base: Env,
  fileContents: string | undefined,
  config: Readonly<Record<string, unknown>>,
): Record<string, string> {
  const errors: string[] = [];
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) {
    if (!Object.hasOwn(ENV, k)) {
      errors.push(`config: unknown field ${JSON.stringify(k)}`);
    } else if (NOT_AT_UPGRADE.has(k as keyof typeof ENV)) {
      errors.push(`config: ${k} belongs to the supervisor and cannot change at upgrade (restart the pod)`);
    } else if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      errors.push(`config: ${k} must be a string, number or boolean, got ${JSON.stringify(v)}`);
    } else {
      out[ENV[k as keyof typeof ENV]] = String(v);
    }
  }
  if (errors.length === 0) {
    try {
      parseConfig({ ...base, ...out }, fileContents);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      errors.push(...err.errors.map((e) => `config: ${e}`));
    }
  }
  if (errors.length > 0) throw new UpgradeRequestError(errors);
  return out;
}
