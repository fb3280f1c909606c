/**
 * The identity CA over real HTTPS on loopback: issuance (the certificate verifies against the
 * root and names exactly the reviewed identity), and every refusal with its security event.
 */
import { X509Certificate, generateKeyPairSync, sign } from 'node:crypto';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { CA_PATHS } from '../../../proxy/src/contract.js';
import { createCsr } from '../../../proxy/src/identity/csr.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import {
  bitString,
  implicitPrimitive,
  integer,
  octetString,
  oid,
  sequence,
  set,
  utf8String,
  tlv,
} from '../../../proxy/src/identity/der.js';

const TOKEN = 'token-of-shop-web-0123456789';
const events: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n'))
      if (line) events.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});
const root = newRoot('mesh.test');
let ca: CaServer;

beforeAll(async () => {
  ca = await startCaServer({
    host: '127.0.0.1',
    port: 0,
    ca: root,
    trustDomain: 'mesh.test',
    reviewer: staticTokenReviewer(new Map([[TOKEN, { namespace: 'shop', serviceAccount: 'web' }]])),
    ttlSeconds: 3600,
    logger: pino({ level: 'info' }, sink),
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
    // Every request of this file comes from 127.0.0.1; the budget has its own tests (flood.test.ts).
    csrRateLimits: {
      perClient: { perSecond: 1000, burst: 1000 },
      global: { perSecond: 1000, burst: 1000 },
      maxClients: 10,
    },
  });
});
afterAll(async () => {
  await ca.close();
});

interface Reply {
  status: number;
  body: string;
  peerUri: string | undefined;
}

function call(method: string, path: string, body?: Buffer | string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: ca.port,
        method,
        path,
        ca: root.certPem,
        // The chain is verified against the mesh root; the name check is the SPIFFE URI below.
        checkServerIdentity: () => undefined,
        agent: false,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const san = (res.socket as TLSSocket).getPeerCertificate().subjectaltname;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), peerUri: san }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function freshCsr(): string {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return createCsr(privateKey, publicKey).pem;
}

/** A CSR asking for a subject CN and a URI SAN of its own choosing (extensionRequest). */
function forgedCsr(): string {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const san = sequence(
    oid('2.5.29.17'),
    octetString(sequence(implicitPrimitive(6, Buffer.from('spiffe://mesh.test/ns/kube-system/sa/admin')))),
  );
  const attrs = tlv(0xa0, sequence(oid('1.2.840.113549.1.9.14'), set(sequence(san))));
  const subject = sequence(set(sequence(oid('2.5.4.3'), utf8String('admin'))));
  const info = sequence(integer(0), subject, publicKey.export({ type: 'spki', format: 'der' }), attrs);
  const sig = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const der = sequence(info, sequence(oid('1.2.840.10045.4.3.2')), bitString(sig));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

function lastEvent(): Record<string, unknown> | undefined {
  return events[events.length - 1];
}

describe('identity CA', () => {
  it('serves with a certificate from the mesh root naming its own SPIFFE identity', async () => {
    const r = await call('GET', CA_PATHS.trustBundle);
    expect(r.status).toBe(200);
    expect(r.body).toBe(root.certPem);
    expect(r.peerUri).toBe('URI:spiffe://mesh.test/ns/remora-system/sa/remora-injector');
  });

  it('issues a certificate that verifies against the root and names exactly the reviewed identity', async () => {
    const r = await call('POST', CA_PATHS.certificates, JSON.stringify({ csr: freshCsr(), token: TOKEN }));
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body) as {
      certificate: string;
      trustBundle: string;
      identity: string;
      expiresAt: string;
    };
    const cert = new X509Certificate(body.certificate);
    expect(cert.verify(root.publicKey)).toBe(true);
    expect(cert.checkIssued(root.cert)).toBe(true);
    expect(cert.subjectAltName).toBe('URI:spiffe://mesh.test/ns/shop/sa/web');
    expect(cert.subject ?? '').toBe('');
    expect(cert.ca).toBe(false);
    const lifetime = new Date(cert.validTo).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(3500_000);
    expect(lifetime).toBeLessThanOrEqual(3600_000);
    expect(body.identity).toBe('spiffe://mesh.test/ns/shop/sa/web');
    expect(lastEvent()).toMatchObject({ level: 40, event: 'certificate_issued', identity: body.identity });
  });

  it('ignores the names a CSR asks for: a forged SAN and CN never reach the certificate', async () => {
    const r = await call('POST', CA_PATHS.certificates, JSON.stringify({ csr: forgedCsr(), token: TOKEN }));
    expect(r.status).toBe(200);
    const cert = new X509Certificate((JSON.parse(r.body) as { certificate: string }).certificate);
    expect(cert.subjectAltName).toBe('URI:spiffe://mesh.test/ns/shop/sa/web');
    expect(cert.subject ?? '').not.toContain('admin');
  });

  it('refuses an unknown token (401) and logs a security event', async () => {
    const r = await call(
      'POST',
      CA_PATHS.certificates,
      JSON.stringify({ csr: freshCsr(), token: 'not-a-known-token-at-all' }),
    );
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ reason: 'token_refused' });
    expect(lastEvent()).toMatchObject({ level: 40, event: 'certificate_refused', reason: 'token_refused' });
  });

  it('refuses a request without a token', async () => {
    const r = await call('POST', CA_PATHS.certificates, JSON.stringify({ csr: freshCsr() }));
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ reason: 'token_missing' });
  });

  it('refuses a malformed CSR (400) with what is wrong', async () => {
    for (const csr of [
      'hello',
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
    ]) {
      const r = await call('POST', CA_PATHS.certificates, JSON.stringify({ csr, token: TOKEN }));
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({ reason: 'csr_invalid' });
    }
    expect(lastEvent()).toMatchObject({ event: 'certificate_refused', reason: 'csr_invalid' });
  });

  it('refuses a CSR whose self-signature does not verify (key not held by the requester)', async () => {
    const good = freshCsr();
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] = (der[der.length - 5] as number) ^ 0xff;
    const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const r = await call('POST', CA_PATHS.certificates, JSON.stringify({ csr: pem, token: TOKEN }));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ reason: 'csr_invalid' });
  });

  it('refuses a body that is not JSON, and one that is huge (413), and keeps serving', async () => {
    const bad = await call('POST', CA_PATHS.certificates, '{nope');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ reason: 'malformed_request' });
    const huge = await call(
      'POST',
      CA_PATHS.certificates,
      JSON.stringify({ csr: 'x'.repeat(1024 * 1024), token: TOKEN }),
    );
    expect(huge.status).toBe(413);
    expect(lastEvent()).toMatchObject({ event: 'certificate_refused', reason: 'body_too_large' });
    const after = await call(
      'POST',
      CA_PATHS.certificates,
      JSON.stringify({ csr: freshCsr(), token: TOKEN }),
    );
    expect(after.status).toBe(200);
  });
});
