/**
 * The identity CA's settings from the environment, parsed once (STYLE #4): every error listed.
 * Called by the injector's main next to parseInjectorConfig.
 */
import { DEFAULT_TRUST_DOMAIN, INJECTOR, INJECTOR_ENV } from '@remora/proxy/contract';
import { InjectorConfigError } from '../errors.js';
import { DEFAULT_CERT_TTL_SECONDS } from './authority.js';

export interface CaConfig {
  /** Mounted root (ca.crt, ca.key); absent: the Secret in Kubernetes, else generated. */
  readonly caDir: string | undefined;
  /** token → ns/sa file; when set it replaces TokenReview (tests, demo, outside Kubernetes). */
  readonly staticTokensFile: string | undefined;
  readonly ttlSeconds: number;
  readonly port: number;
  readonly trustDomain: string;
  /** Static discovery source served on the same listener (outside Kubernetes). */
  readonly discoveryFile: string | undefined;
}

export function parseCaConfig(env: Readonly<Record<string, string | undefined>>): CaConfig {
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
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) > 65535)
      errors.push(`${INJECTOR_ENV.caPort}: ${JSON.stringify(rawPort)} must be a port 0-65535`);
    else port = Number(rawPort);
  }
  const trustDomain = nonEmpty(INJECTOR_ENV.trustDomain) ?? DEFAULT_TRUST_DOMAIN;
  if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(trustDomain))
    errors.push(
      `${INJECTOR_ENV.trustDomain}: ${JSON.stringify(trustDomain)} is not a trust domain (lower-case DNS name)`,
    );
  if (errors.length > 0) throw new InjectorConfigError(errors);
  return Object.freeze({
    caDir: nonEmpty(INJECTOR_ENV.caDir),
    staticTokensFile: nonEmpty(INJECTOR_ENV.staticTokens),
    ttlSeconds,
    port,
    trustDomain,
    discoveryFile: nonEmpty(INJECTOR_ENV.discoveryFile),
  });
}
