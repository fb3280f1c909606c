/**
 * Issuing a workload certificate (pure apart from the clock and randomness): the key from a
 * verified CSR, the identity from the token review. The certificate names nothing else: no
 * subject, no DNS or IP names, only the SPIFFE URI, for both client and server use.
 */
import type { X509Certificate } from 'node:crypto';
import { issue } from '../pki/ca.js';
import type { Ca } from '../pki/ca.js';
import { parseCsr } from './csr.js';
import type { ParsedCsr } from './csr.js';
import type { Reviewed } from './tokens.js';

export const DEFAULT_CERT_TTL_SECONDS = 86_400;

export function spiffeId(trustDomain: string, who: Reviewed): string {
  return `spiffe://${trustDomain}/ns/${who.namespace}/sa/${who.serviceAccount}`;
}

export interface Issued {
  readonly certPem: string;
  readonly cert: X509Certificate;
  readonly identity: string;
}

export function signCsr(
  ca: Ca,
  /** the DER CSR, or one parseCsr already checked */
  csr: Buffer | ParsedCsr,
  who: Reviewed,
  trustDomain: string,
  ttlSeconds: number,
  now = new Date(),
): Issued {
  const { publicKey } = Buffer.isBuffer(csr) ? parseCsr(csr) : csr;
  const identity = spiffeId(trustDomain, who);
  const leaf = issue(
    ca,
    {
      subject: {},
      validityDays: ttlSeconds / 86_400,
      uris: [identity],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      publicKey,
    },
    now,
  );
  return { certPem: leaf.certPem, cert: leaf.cert, identity };
}
