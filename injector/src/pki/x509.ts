/**
 * X.509 v3 certificate creation over Node's crypto (Node has no certificate-creation API, and
 * slim images have no openssl). ECDSA P-256 keys, SHA-256 signatures. Serves the webhook's
 * serving certificate now and the identity CA later: subject, issuer, validity, SANs (DNS, IP,
 * URI), basicConstraints, keyUsage, extKeyUsage, subject and authority key identifiers.
 */
import { X509Certificate, createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import {
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  integer,
  integerBytes,
  ipBytes,
  namedBits,
  octetString,
  oid,
  sequence,
  set,
  time,
  utf8String,
} from '@remora/proxy/der';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

const KEY_USAGE_BITS = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;
export type KeyUsage = keyof typeof KEY_USAGE_BITS;
export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

export interface DistinguishedName {
  commonName?: string;
  organization?: string;
}

export interface CertificateSpec {
  subject: DistinguishedName;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** Absent: self-signed with `selfSignKey` (the private half of publicKey). */
  issuer?: { name: DistinguishedName; privateKey: KeyObject; publicKey: KeyObject };
  selfSignKey?: KeyObject;
  isCa?: boolean;
  pathLen?: number;
  keyUsage: readonly KeyUsage[];
  extKeyUsage?: readonly ExtKeyUsage[];
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  uris?: readonly string[];
  serial?: Buffer;
}

export function generateKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function name(dn: DistinguishedName): Buffer {
  const rdns: Buffer[] = [];
  if (dn.organization !== undefined)
    rdns.push(set(sequence(oid(OID.organization), utf8String(dn.organization))));
  if (dn.commonName !== undefined) rdns.push(set(sequence(oid(OID.commonName), utf8String(dn.commonName))));
  return sequence(...rdns);
}

/** Key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1). */
export function keyId(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || !jwk.x || !jwk.y) throw new Error('only EC P-256 keys are supported');
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x, 'base64url'),
    Buffer.from(jwk.y, 'base64url'),
  ]);
  return createHash('sha1').update(point).digest();
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

export function createCertificate(spec: CertificateSpec): { der: Buffer; pem: string } {
  const signer = spec.issuer?.privateKey ?? spec.selfSignKey;
  if (!signer) throw new Error('createCertificate needs an issuer or selfSignKey');
  if (spec.notAfter <= spec.notBefore) throw new Error('notAfter must be after notBefore');
  const issuerName = spec.issuer?.name ?? spec.subject;
  const issuerKey = spec.issuer?.publicKey ?? spec.publicKey;
  const serial = spec.serial ?? randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f || 0x01; // positive and non-zero (RFC 5280 §4.1.2.2)

  const exts: Buffer[] = [];
  const bc: Buffer[] = [];
  if (spec.isCa) {
    bc.push(boolean(true));
    if (spec.pathLen !== undefined) bc.push(integer(spec.pathLen));
  }
  exts.push(extension(OID.basicConstraints, true, sequence(...bc)));
  exts.push(extension(OID.keyUsage, true, namedBits(spec.keyUsage.map((k) => KEY_USAGE_BITS[k]))));
  if (spec.extKeyUsage && spec.extKeyUsage.length > 0) {
    exts.push(extension(OID.extKeyUsage, false, sequence(...spec.extKeyUsage.map((e) => oid(OID[e])))));
  }
  const sans: Buffer[] = [
    ...(spec.dnsNames ?? []).map((d) => implicitPrimitive(2, Buffer.from(d, 'ascii'))),
    ...(spec.uris ?? []).map((u) => implicitPrimitive(6, Buffer.from(u, 'ascii'))),
    ...(spec.ipAddresses ?? []).map((ip) => implicitPrimitive(7, ipBytes(ip))),
  ];
  // With an empty subject the SAN extension must be critical (RFC 5280 §4.2.1.6).
  const emptySubject = spec.subject.commonName === undefined && spec.subject.organization === undefined;
  if (sans.length > 0) exts.push(extension(OID.subjectAltName, emptySubject, sequence(...sans)));
  exts.push(extension(OID.subjectKeyIdentifier, false, octetString(keyId(spec.publicKey))));
  exts.push(extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, keyId(issuerKey)))));

  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' });
  const tbs = sequence(
    explicit(0, integer(2)),
    integerBytes(serial),
    algorithm,
    name(issuerName),
    sequence(time(spec.notBefore), time(spec.notAfter)),
    name(spec.subject),
    spki,
    explicit(3, sequence(...exts)),
  );
  const signature = sign('sha256', tbs, { key: signer, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, bitString(signature));
  return { der, pem: toPem(der) };
}

export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Splits a PEM bundle into parsed certificates, ignoring blocks that do not parse. */
export function parsePemBundle(bundle: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const m of bundle.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)) {
    try {
      out.push(new X509Certificate(m[0]));
    } catch {
      // a corrupt block in someone else's bundle is dropped, not fatal
    }
  }
  return out;
}
