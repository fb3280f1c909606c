/**
 * A workload certificate issued by a test's mesh root, as a proxy would get it from the CA: the
 * injector's streams refuse clients without one. `credentials` is the proxy-side view of it.
 * And the injector's CA listener on loopback, for tests of what it serves.
 */
import { pino } from 'pino';
import { startCaServer } from '../../injector/src/ca/server.js';
import type { CaServer, CaServerOptions } from '../../injector/src/ca/server.js';
import { staticTokenReviewer } from '../../injector/src/ca/tokens.js';
import { issue } from '../../injector/src/pki/ca.js';
import type { Ca } from '../../injector/src/pki/ca.js';
import type { ClientCredentials } from '../../proxy/src/discovery/ndjson.js';
import type { IdentityMaterial } from '../../proxy/src/identity/identity.js';

export interface WorkloadCert {
  readonly identity: string;
  readonly keyPem: string;
  readonly certPem: string;
  readonly credentials: ClientCredentials;
}

export function workloadCert(root: Ca, identity: string, validityDays = 1): WorkloadCert {
  const leaf = issue(root, {
    subject: {},
    validityDays,
    uris: [identity],
    extKeyUsage: ['clientAuth', 'serverAuth'],
  });
  const material = { keyPem: leaf.keyPem, certPem: leaf.certPem };
  return {
    identity,
    ...material,
    credentials: { current: () => material, first: () => Promise.resolve(material) },
  };
}

/** The same as the proxy's Identity holds it (what the tunnel's TLS contexts are built from). */
export function identityMaterial(root: Ca & { certPem: string }, identity: string): IdentityMaterial {
  const leaf = issue(root, {
    subject: {},
    validityDays: 1,
    uris: [identity],
    extKeyUsage: ['clientAuth', 'serverAuth'],
  });
  return {
    keyPem: leaf.keyPem,
    certPem: leaf.certPem,
    cert: leaf.cert,
    identity,
    trustBundle: root.certPem,
    notAfter: Date.now() + 86_400_000,
  };
}

/** The injector's CA listener on loopback (port 0), the reviewer refusing every token unless given. */
export function startLoopbackCa(
  root: Ca,
  trustDomain: string,
  extra: Partial<CaServerOptions> = {},
): Promise<CaServer> {
  return startCaServer({
    host: '127.0.0.1',
    port: 0,
    ca: root,
    trustDomain,
    reviewer: staticTokenReviewer(new Map()),
    ttlSeconds: 3600,
    logger: pino({ level: 'silent' }),
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
    ...extra,
  });
}
