/**
 * The X.509 encoder, checked by Node's own parser (crypto.X509Certificate), by openssl-free
 * signature verification, and by a real TLS handshake that verifies the chain against the CA.
 */
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { createCa, issue } from '../../../injector/src/pki/ca.js';
import { createCertificate, generateKey, keyId, parsePemBundle } from '../../../injector/src/pki/x509.js';

describe('X.509 certificates', () => {
  const ca = createCa({ organization: 'remora', commonName: 'test root' }, 10);

  it('a CA certificate parses, is a CA, and is self-signed', () => {
    const x = new X509Certificate(ca.certPem);
    expect(x.ca).toBe(true);
    expect(x.subject).toBe('O=remora\nCN=test root');
    expect(x.issuer).toBe(x.subject);
    expect(x.verify(ca.publicKey)).toBe(true);
    expect(x.checkIssued(x)).toBe(true);
    expect(new Date(x.validTo).getTime() - Date.now()).toBeGreaterThan(9 * 86_400_000);
  });

  it('a leaf has its SANs (DNS, IP, URI), is not a CA, and is signed by the CA', () => {
    const leaf = issue(ca, {
      subject: { commonName: 'svc' },
      validityDays: 1,
      dnsNames: ['remora-injector.remora-system.svc', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      uris: ['spiffe://cluster.local/ns/shop/sa/web'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
    });
    const x = leaf.cert;
    expect(x.ca).toBe(false);
    expect(x.subjectAltName).toBe(
      'DNS:remora-injector.remora-system.svc, DNS:localhost, URI:spiffe://cluster.local/ns/shop/sa/web, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(x.checkHost('remora-injector.remora-system.svc')).toBe('remora-injector.remora-system.svc');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkIssued(ca.cert)).toBe(true);
    expect(x.verify(ca.publicKey)).toBe(true);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(x.issuer).toBe(ca.cert.subject);
  });

  it('key identifiers link the leaf to its CA', () => {
    // Node does not expose the extensions; find the AKI key id bytes in the DER instead.
    const leaf = issue(ca, { subject: { commonName: 'x' }, validityDays: 1, extKeyUsage: ['serverAuth'] });
    expect(leaf.cert.raw.includes(keyId(ca.publicKey))).toBe(true);
    expect(ca.cert.raw.includes(keyId(ca.publicKey))).toBe(true);
  });

  it('a leaf never outlives its CA', () => {
    const shortCa = createCa({ commonName: 'short' }, 1);
    const leaf = issue(shortCa, {
      subject: { commonName: 'x' },
      validityDays: 30,
      extKeyUsage: ['serverAuth'],
    });
    expect(new Date(leaf.cert.validTo).getTime()).toBeLessThanOrEqual(
      new Date(shortCa.cert.validTo).getTime(),
    );
  });

  it('refuses impossible requests', () => {
    const k = generateKey();
    const base = { subject: {}, publicKey: k.publicKey, keyUsage: ['digitalSignature' as const] };
    expect(() =>
      createCertificate({ ...base, notBefore: new Date(), notAfter: new Date(Date.now() + 1000) }),
    ).toThrow(/issuer or selfSignKey/);
    expect(() =>
      createCertificate({
        ...base,
        selfSignKey: k.privateKey,
        notBefore: new Date(),
        notAfter: new Date(Date.now() - 1000),
      }),
    ).toThrow(/notAfter/);
  });

  it('parsePemBundle keeps the certificates and drops garbage', () => {
    const other = createCa({ commonName: 'other' }, 1);
    const bundle = `${ca.certPem}junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n${other.certPem}`;
    expect(parsePemBundle(bundle).map((c) => c.subject)).toEqual([ca.cert.subject, other.cert.subject]);
  });

  it('serves a real TLS handshake that a client verifies against the CA only', async () => {
    const leaf = issue(ca, {
      subject: { commonName: 'localhost' },
      validityDays: 1,
      dnsNames: ['localhost'],
      extKeyUsage: ['serverAuth'],
    });
    const server = createServer({ key: leaf.keyPem, cert: leaf.certPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const handshake = (ca: string, servername: string): Promise<boolean> =>
      new Promise((resolve) => {
        const s = connect({ host: '127.0.0.1', port, ca, servername }, () => {
          resolve(s.authorized);
          s.end();
        });
        s.on('error', () => resolve(false));
      });
    try {
      expect(await handshake(ca.certPem, 'localhost')).toBe(true);
      expect(await handshake(ca.certPem, 'elsewhere')).toBe(false);
      expect(await handshake(createCa({ commonName: 'stranger' }, 1).certPem, 'localhost')).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
