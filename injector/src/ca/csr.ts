/**
 * A small PKCS#10 (RFC 2986) reader: a DER walker with strict lengths, then the one thing the CA
 * takes from a CSR, its public key, after checking the CSR's self-signature (proof that the
 * requester holds the private key). Names and extensions in the CSR are deliberately ignored:
 * the identity comes from the token review, never from the request.
 */
import { createPublicKey, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CsrError } from './errors.js';

export interface Tlv {
  readonly tag: number;
  /** content bytes */
  readonly content: Buffer;
  /** the whole TLV (tag, length, content) */
  readonly raw: Buffer;
}

/** Reads one TLV at `offset`; definite lengths only (DER), no trailing garbage in `end`. */
export function readTlv(buf: Buffer, offset: number): Tlv {
  if (offset + 2 > buf.length) throw new CsrError('truncated DER');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new CsrError('multi-byte DER tags are not supported');
  let len = buf[offset + 1] as number;
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new CsrError('bad DER length');
    if (offset + 2 + n > buf.length) throw new CsrError('truncated DER');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[offset + 2 + i] as number);
    if (len < 0x80) throw new CsrError('non-minimal DER length');
    head += n;
  }
  const end = offset + head + len;
  if (end > buf.length) throw new CsrError('truncated DER');
  return { tag, content: buf.subarray(offset + head, end), raw: buf.subarray(offset, end) };
}

/** The TLVs inside a constructed value, in order. */
export function children(t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < t.content.length;) {
    const c = readTlv(t.content, off);
    out.push(c);
    off += c.raw.length;
  }
  return out;
}

export function decodeOid(content: Buffer): string {
  if (content.length === 0) throw new CsrError('empty OID');
  const first = content[0] as number;
  const parts = [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40];
  let v = 0;
  for (let i = 1; i < content.length; i++) {
    const b = content[i] as number;
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const SEQUENCE = 0x30;

export interface ParsedCsr {
  readonly publicKey: KeyObject;
}

/** A PEM "CERTIFICATE REQUEST" (or "NEW CERTIFICATE REQUEST") block → DER. */
export function csrPemToDer(pem: string): Buffer {
  const m =
    /-----BEGIN (NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END (NEW )?CERTIFICATE REQUEST-----/.exec(
      pem,
    );
  if (!m) throw new CsrError('not a PEM CERTIFICATE REQUEST');
  return Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64');
}

/**
 * Parses and verifies a CSR: ECDSA P-256 key, ecdsa-with-SHA256 self-signature over the
 * CertificationRequestInfo. Throws CsrError naming what is wrong.
 */
export function parseCsr(der: Buffer): ParsedCsr {
  const top = readTlv(der, 0);
  if (top.tag !== SEQUENCE || top.raw.length !== der.length) throw new CsrError('not a DER SEQUENCE');
  const [info, alg, sig, extra] = children(top);
  if (!info || !alg || !sig || extra || info.tag !== SEQUENCE || alg.tag !== SEQUENCE || sig.tag !== 0x03)
    throw new CsrError('not a PKCS#10 CertificationRequest');
  const [version, subject, spki] = children(info);
  if (!version || version.tag !== 0x02 || !version.content.equals(Buffer.from([0])))
    throw new CsrError('unsupported CSR version');
  if (!subject || subject.tag !== SEQUENCE || !spki || spki.tag !== SEQUENCE)
    throw new CsrError('CSR has no subject public key');
  const algOid = children(alg)[0];
  if (!algOid || algOid.tag !== 0x06 || decodeOid(algOid.content) !== ECDSA_WITH_SHA256)
    throw new CsrError('CSR signature algorithm must be ecdsa-with-SHA256');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrError(`CSR public key does not parse: ${(err as Error).message}`);
  }
  const details = publicKey.asymmetricKeyDetails;
  if (publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'prime256v1')
    throw new CsrError('CSR key must be ECDSA P-256');
  if (sig.content.length < 2 || sig.content[0] !== 0) throw new CsrError('bad CSR signature encoding');
  let ok = false;
  try {
    ok = verify('sha256', info.raw, { key: publicKey, dsaEncoding: 'der' }, sig.content.subarray(1));
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('CSR signature does not verify');
  return { publicKey };
}
