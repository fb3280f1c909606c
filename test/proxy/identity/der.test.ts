/**
 * The one DER encoder (proxy/src/identity/der.ts): the injector's CA writes certificates with it
 * (test/injector/pki/x509.test.ts checks those with Node's parser and a TLS handshake) and the
 * proxy writes its certificate requests with it; here the encoding rules themselves, and a CSR
 * that the CA's own parser reads back.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCsr } from '../../../injector/src/ca/csr.js';
import { createCsr } from '../../../proxy/src/identity/csr.js';
import { integer, ipBytes, namedBits, oid, time, tlv } from '../../../proxy/src/identity/der.js';

describe('DER encoder', () => {
  it('encodes lengths, integers, OIDs, bit strings and times as DER requires', () => {
    expect(tlv(0x04, Buffer.alloc(3)).toString('hex')).toBe('0403000000');
    expect(tlv(0x04, Buffer.alloc(200)).subarray(0, 3).toString('hex')).toBe('0481c8');
    expect(tlv(0x04, Buffer.alloc(300)).subarray(0, 4).toString('hex')).toBe('0482012c');
    expect(integer(0).toString('hex')).toBe('020100');
    expect(integer(127).toString('hex')).toBe('02017f');
    expect(integer(128).toString('hex')).toBe('02020080');
    expect(integer(2).toString('hex')).toBe('020102');
    expect(oid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(oid('2.5.29.17').toString('hex')).toBe('0603551d11');
    // keyUsage digitalSignature + keyCertSign + cRLSign: bits 0,5,6 → 0x86 with 1 unused bit.
    expect(namedBits([0, 5, 6]).toString('hex')).toBe('03020186');
    expect(namedBits([0]).toString('hex')).toBe('03020780');
    expect(time(new Date('2030-01-02T03:04:05Z')).toString('ascii')).toContain('300102030405Z');
    expect(time(new Date('2051-01-02T03:04:05Z'))[0]).toBe(0x18);
    expect(ipBytes('::1').toString('hex')).toBe('00000000000000000000000000000001');
    expect(ipBytes('fd00::1:2').toString('hex')).toBe('fd000000000000000000000000010002');
    expect(ipBytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(ipBytes('10.1.2.3').toString('hex')).toBe('0a010203');
  });
});

describe('certificate request on the shared encoder', () => {
  it('is a version-0 request with an empty subject that the CA parses, carrying the same public key', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { der, pem } = createCsr(privateKey, publicKey);
    expect(pem).toMatch(
      /^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE REQUEST-----\n$/,
    );
    // SEQUENCE { SEQUENCE { INTEGER 0, SEQUENCE {} (subject), ...
    const infoStart = der[1] === 0x81 ? 3 : der[1] === 0x82 ? 4 : 2;
    const info = der.subarray(infoStart);
    const innerStart = info[1] === 0x81 ? 3 : 2;
    expect(info.subarray(innerStart, innerStart + 5).toString('hex')).toBe('0201003000');
    const parsed = parseCsr(der);
    expect(parsed.publicKey.export({ type: 'spki', format: 'der' })).toEqual(
      publicKey.export({ type: 'spki', format: 'der' }),
    );
  });
});
