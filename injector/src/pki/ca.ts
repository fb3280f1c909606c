/**
 * A certificate authority held in memory: a self-signed root and the leaf certificates it
 * issues. Used for the webhook's self-generated serving certificate; the identity CA will reuse it.
 */
import { X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createCertificate, generateKey } from './x509.js';
import type { DistinguishedName, ExtKeyUsage } from './x509.js';

const DAY_MS = 86_400_000;
/** Backdating covers clock skew between this process and its clients. */
const BACKDATE_MS = 5 * 60_000;

export interface Ca {
  name: DistinguishedName;
  privateKey: KeyObject;
  publicKey: KeyObject;
  certPem: string;
  cert: X509Certificate;
}

export interface IssuedCert {
  keyPem: string;
  certPem: string;
  cert: X509Certificate;
}

export function createCa(name: DistinguishedName, validityDays: number, now = new Date()): Ca {
  const { privateKey, publicKey } = generateKey();
  const { pem } = createCertificate({
    subject: name,
    publicKey,
    selfSignKey: privateKey,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    isCa: true,
    pathLen: 0,
    keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
  });
  return { name, privateKey, publicKey, certPem: pem, cert: new X509Certificate(pem) };
}

export interface LeafSpec {
  subject: DistinguishedName;
  validityDays: number;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  uris?: readonly string[];
  extKeyUsage: readonly ExtKeyUsage[];
  /** Bring your own key (a CSR's); absent: a fresh P-256 key is generated. */
  publicKey?: KeyObject;
}

export function issue(ca: Ca, spec: LeafSpec, now = new Date()): IssuedCert {
  const own = spec.publicKey ? undefined : generateKey();
  const publicKey = spec.publicKey ?? (own as { publicKey: KeyObject }).publicKey;
  const notAfter = Math.min(now.getTime() + spec.validityDays * DAY_MS, new Date(ca.cert.validTo).getTime());
  const { pem } = createCertificate({
    subject: spec.subject,
    publicKey,
    issuer: { name: ca.name, privateKey: ca.privateKey, publicKey: ca.publicKey },
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(notAfter),
    keyUsage: ['digitalSignature'],
    extKeyUsage: spec.extKeyUsage,
    ...(spec.dnsNames ? { dnsNames: spec.dnsNames } : {}),
    ...(spec.ipAddresses ? { ipAddresses: spec.ipAddresses } : {}),
    ...(spec.uris ? { uris: spec.uris } : {}),
  });
  return {
    keyPem: own ? (own.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) : '',
    certPem: pem,
    cert: new X509Certificate(pem),
  };
}
