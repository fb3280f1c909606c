/**
 * PKCS#10 certificate request (RFC 2986) for the proxy's in-memory key, with the DER encoder the
 * injector's CA writes certificates with (der.ts). The request carries no name: the CA takes the
 * identity from the token review.
 */
import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { bitString, integer, oid, sequence, tlv } from './der.js';

const ECDSA_WITH_SHA256 = oid('1.2.840.10045.4.3.2');

/** Builds and signs a CSR for `privateKey`/`publicKey`; returns DER and PEM. */
export function createCsr(privateKey: KeyObject, publicKey: KeyObject): { der: Buffer; pem: string } {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // version 0, empty subject, key, empty attributes ([0] IMPLICIT SET OF)
  const info = sequence(integer(0), sequence(), spki, tlv(0xa0, Buffer.alloc(0)));
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const der = sequence(info, sequence(ECDSA_WITH_SHA256), bitString(signature));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return { der, pem: `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n` };
}
