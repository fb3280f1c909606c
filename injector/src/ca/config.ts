/**
 * The identity CA's settings from the environment, parsed once (STYLE #4): every error listed.
 * Called by the injector's main next to parseInjectorConfig.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_TRUST_DOMAIN, INJECTOR, INJECTOR_ENV, POD_PATHS } from '@remora/proxy/contract';
import { parseBindPort, parseTrustDomain } from '@remora/proxy/values';
import { InjectorConfigError } from '../errors.js';
import { DEFAULT_CERT_TTL_SECONDS } from './authority.js';
import { DEFAULT_STREAM_LIMITS } from './ndjson.js';
import type { StreamLimits } from './ndjson.js';

export interface CaConfig {
  /** Mounted root (ca.crt, ca.key); absent: the Secret in Kubernetes, else generated. */
  readonly caDir: string | undefined;
  /** token → ns/sa file; when set it replaces TokenReview (tests, demo, outside Kubernetes). */
  readonly staticTokensFile: string | undefined;
  /**
   * The static file was allowed although in-cluster credentials are present
   * (REMORA_ALLOW_STATIC_TOKENS=true): said loudly at start.
   */
  readonly staticTokensForced: boolean;
  readonly ttlSeconds: number;
  readonly port: number;
  readonly trustDomain: string;
  /** Static discovery source served on the same listener (outside Kubernetes). */
  readonly discoveryFile: string | undefined;
  /** caps of the discovery and policy streams (ca/ndjson.ts) */
  readonly streamLimits: StreamLimits;
}

/** The service-account token every pod gets: with KUBERNETES_SERVICE_HOST, we run in a cluster. */
export const IN_CLUSTER_TOKEN_FILE = join(POD_PATHS.defaultSaTokenDir, 'token');

/** What the CA config looks at besides env (a parameter so tests can say "in a cluster"). */
export interface CaConfigProbe {
  fileExists(path: string): boolean;
}

const REAL_PROBE: CaConfigProbe = { fileExists: existsSync };

/** In-cluster credentials, as client-node's loadFromCluster would find them. */
export function inCluster(env: Readonly<Record<string, string | undefined>>, probe: CaConfigProbe): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST) && probe.fileExists(IN_CLUSTER_TOKEN_FILE);
}

export function parseCaConfig(
  env: Readonly<Record<string, string | undefined>>,
  probe: CaConfigProbe = REAL_PROBE,
): CaConfig {
  const errors: string[] = [];
  const nonEmpty = (k: string): string | undefined =>
    env[k] === undefined || env[k] === '' ? undefined : env[k];
  let ttlSeconds = DEFAULT_CERT_TTL_SECONDS;
  const rawTtl = nonEmpty(INJECTOR_ENV.certTtlSeconds);
  if (rawTtl !== undefined) {
    // Below 10 s a proxy would spend its life renewing; above a year the certificate is not short-lived.
    if (!/^\d+$/.test(rawTtl) || Number(rawTtl) < 10 || Number(rawTtl) > 365 * 86_400)
      errors.push(
        `${INJECTOR_ENV.certTtlSeconds}: ${JSON.stringify(rawTtl)} must be seconds between 10 and 31536000`,
      );
    else ttlSeconds = Number(rawTtl);
  }
  let port: number = INJECTOR.caPort;
  const rawPort = nonEmpty(INJECTOR_ENV.caPort);
  if (rawPort !== undefined) {
    const p = parseBindPort(rawPort);
    if (!p.ok) errors.push(`${INJECTOR_ENV.caPort}: ${JSON.stringify(rawPort)} must be a port 0-65535`);
    else port = p.value;
  }
  const count = (key: string, fallback: number, max: number): number => {
    const raw = nonEmpty(key);
    if (raw === undefined) return fallback;
    if (/^\d{1,7}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= max) return Number(raw);
    errors.push(`${key}: ${JSON.stringify(raw)} must be a whole number between 1 and ${max}`);
    return fallback;
  };
  const streamLimits: StreamLimits = Object.freeze({
    ...DEFAULT_STREAM_LIMITS,
    maxTotal: count(INJECTOR_ENV.maxStreams, DEFAULT_STREAM_LIMITS.maxTotal, 1_000_000),
    maxPerClient: count(INJECTOR_ENV.maxStreamsPerClient, DEFAULT_STREAM_LIMITS.maxPerClient, 100_000),
  });
  const trustDomain = nonEmpty(INJECTOR_ENV.trustDomain) ?? DEFAULT_TRUST_DOMAIN;
  const td = parseTrustDomain(trustDomain);
  if (!td.ok) errors.push(`${INJECTOR_ENV.trustDomain}: ${JSON.stringify(trustDomain)} ${td.reason}`);
  const staticTokensFile = nonEmpty(INJECTOR_ENV.staticTokens);
  const rawAllow = nonEmpty(INJECTOR_ENV.allowStaticTokens) ?? 'false';
  if (rawAllow !== 'true' && rawAllow !== 'false')
    errors.push(`${INJECTOR_ENV.allowStaticTokens}: ${JSON.stringify(rawAllow)} must be true or false`);
  // The static file is a stand-in for tests and demos: in a cluster it would replace
  // TokenReview for every workload, so anyone who can read it mints any identity.
  const forced = staticTokensFile !== undefined && inCluster(env, probe);
  if (forced && rawAllow !== 'true')
    errors.push(
      `${INJECTOR_ENV.staticTokens} is set but in-cluster credentials are present (KUBERNETES_SERVICE_HOST and ${IN_CLUSTER_TOKEN_FILE}): ` +
        `a static token file would replace TokenReview for every workload; unset it, or set ${INJECTOR_ENV.allowStaticTokens}=true to force it`,
    );
  if (errors.length > 0) throw new InjectorConfigError(errors);
  return Object.freeze({
    caDir: nonEmpty(INJECTOR_ENV.caDir),
    staticTokensFile,
    staticTokensForced: forced,
    ttlSeconds,
    port,
    trustDomain,
    discoveryFile: nonEmpty(INJECTOR_ENV.discoveryFile),
    streamLimits,
  });
}
