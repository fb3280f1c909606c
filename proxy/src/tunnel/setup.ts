/**
 * Builds the engine's Mesh from the config: an Identity when a CA is configured (its trust
 * bundle read now, so a missing file is a start-up error), discovery from the static file or,
 * without one, from the injector's stream. Returns undefined when none is configured: the
 * engine then runs without mTLS.
 */
import { readFileSync } from 'node:fs';
import { ENV, INJECTOR } from '../contract.js';
import type { ProxyConfig } from '../config/config.js';
import { staticDiscovery } from '../discovery/static.js';
import type { Discovery } from '../discovery/static.js';
import type { ClientCredentials } from '../discovery/ndjson.js';
import { StreamDiscovery } from '../discovery/stream.js';
import { ConfigError } from '../errors.js';
import { Identity } from '../identity/identity.js';
import type { Logger } from '../log.js';
import type { Registry } from '../metrics/registry.js';
import { Mesh } from './mesh.js';

/** The workload certificate as the injector streams present it (discovery/ndjson.ts). */
export function credentialsOf(identity: Identity): ClientCredentials {
  return { current: () => identity.current, first: () => identity.first() };
}

export function createMesh(c: ProxyConfig, log: Logger, registry: Registry): Mesh | undefined {
  if (c.caAddress === undefined && c.discoveryFile === undefined && c.discoveryAddress === undefined)
    return undefined;
  const errors: string[] = [];
  // The injector serves both the CA and discovery, and proves this identity on both.
  const injectorIdentity = `spiffe://${c.trustDomain}/ns/${INJECTOR.namespace}/sa/${INJECTOR.serviceAccount}`;
  let caBundle = '';
  if (c.caBundleFile !== undefined) {
    try {
      caBundle = readFileSync(c.caBundleFile, 'utf8');
      if (!caBundle.includes('-----BEGIN CERTIFICATE-----'))
        errors.push(`${ENV.caBundleFile}: ${c.caBundleFile} holds no PEM certificate`);
    } catch (err) {
      errors.push(
        `${ENV.caBundleFile}: cannot read ${c.caBundleFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  }
  let identity: Identity | undefined;
  if (c.caAddress !== undefined) {
    identity = new Identity({
      ca: c.caAddress,
      tokenFile: c.tokenFile as string,
      caBundle,
      caIdentity: injectorIdentity,
      log,
    });
  }
  let discovery: Discovery | undefined;
  if (c.discoveryFile !== undefined) {
    try {
      discovery = staticDiscovery(c.discoveryFile, log);
    } catch (err) {
      errors.push(`${ENV.discoveryFile}: ${c.discoveryFile}: ${(err as Error).message}`);
    }
  } else if (c.discoveryAddress !== undefined) {
    discovery = new StreamDiscovery({
      address: c.discoveryAddress,
      caBundle,
      serverIdentity: injectorIdentity,
      ...(identity !== undefined ? { credentials: credentialsOf(identity) } : {}),
      log,
    });
  }
  if (errors.length > 0) {
    discovery?.close();
    throw new ConfigError(errors);
  }
  return new Mesh({
    mtlsMode: c.mtlsMode,
    identity,
    discovery,
    log,
    registry,
    http1OverH2: c.meshHttp1OverH2,
  });
}
