/**
 * PKCS#10 certificate request (RFC 2986) for the proxy's in-memory key: just the DER pieces a
 * CSR needs (the proxy does not import the injector's encoder; this mirrors its few lines).
 * The request carries no name: the CA takes the identity from the token review.
 */
import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
/** ecdsa-with-SHA256, 1.2.840.10045.4.3.2, pre-encoded. */
const ECDSA_WITH_SHA256 = Buffer.from('06082a8648ce3d040302', 'hex');

/** Builds and signs a CSR for `privateKey`/`publicKey`; returns DER and PEM. */
export function createCsr(privateKey: KeyObject, publicKey: KeyObject): { der: Buffer; pem: string } {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // version 0, empty subject, key, empty attributes ([0] IMPLICIT SET OF)
  const info = seq(tlv(0x02, Buffer.from([0])), seq(), spki, Buffer.from([0xa0, 0x00]));
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const der = seq(info, seq(ECDSA_WITH_SHA256), tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return { der, pem: `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n` };
}
