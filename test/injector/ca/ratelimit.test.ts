/**
 * A CSR flood used to cost a TokenReview each, and a junk CSR reached the reviewer before it was
 * parsed. Over real HTTPS on loopback: the budget per client address and the global one answer
 * 429 before the body is read, and junk is refused before any review. The token reviewer is an
 * injected function at the edge (the TokenReview API is the edge we cannot run); the budget's
 * clock is injected and stands still, so the counts are exact.
 */
import { generateKeyPairSync } from 'node:crypto';
import https from 'node:https';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CA_PATHS } from '../../../proxy/src/contract.js';
import { createCsr } from '../../../proxy/src/identity/csr.js';
import { TokenRefusedError } from '../../../injector/src/ca/errors.js';
import { CsrRateLimiter } from '../../../injector/src/ca/ratelimit.js';
import type { CsrRateLimits } from '../../../injector/src/ca/ratelimit.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { InjectorMetrics } from '../../../injector/src/webhook/metrics.js';

const root = newRoot('mesh.test');
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const CSR = createCsr(privateKey, publicKey).pem;
let server: CaServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A CA whose reviewer (an injected function at the edge) counts its calls and refuses every token. */
async function start(limits: CsrRateLimits): Promise<{ ca: CaServer; reviews: () => number }> {
  let calls = 0;
  const ca = await startCaServer({
    host: '127.0.0.1',
    port: 0,
    ca: root,
    trustDomain: 'mesh.test',
    reviewer: () => {
      calls += 1;
      return Promise.reject(new TokenRefusedError('unknown token'));
    },
    ttlSeconds: 3600,
    logger: pino({ level: 'silent' }),
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
    csrRateLimits: limits,
    now: () => 1_000_000, // the budget never refills during a test
  });
  server = ca;
  return { ca, reviews: () => calls };
}

function post(
  port: number,
  body: string,
  localAddress = '127.0.0.1',
): Promise<{ status: number; reason: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: CA_PATHS.certificates,
        ca: root.certPem,
        checkServerIdentity: () => undefined,
        agent: false,
        localAddress,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            reason: ((JSON.parse(text) as { reason?: string }).reason ?? '') as string,
            retryAfter: res.headers['retry-after'],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const count = (xs: { status: number }[], status: number): number =>
  xs.filter((x) => x.status === status).length;
const junkToken = (i: number): string => JSON.stringify({ csr: CSR, token: `junk-token-${i}-0123456789` });

describe('CSR flood (token reviewer injected at the edge)', () => {
  it('a flood from one address gets 429 past its burst; the reviewer is called burst times, not once per request', async () => {
    const { ca, reviews } = await start({
      perClient: { perSecond: 0.1, burst: 5 },
      global: { perSecond: 50, burst: 200 },
      maxClients: 100,
    });
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => post(ca.port, junkToken(i))));
    expect(count(answers, 401)).toBe(5);
    expect(count(answers, 429)).toBe(55);
    expect(reviews()).toBe(5);
    const limited = answers.find((a) => a.status === 429);
    expect(limited).toMatchObject({ reason: 'rate_limited' });
    expect(Number(limited?.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(ca.stats.refused.rate_limited).toBe(55);
    const metrics = new InjectorMetrics();
    metrics.observeCa(ca);
    expect(metrics.render()).toContain(
      'remora_injector_certificates_refused_total{reason="rate_limited"} 55\n',
    );
    // Another address (another pod) still has its own budget.
    expect((await post(ca.port, junkToken(99), '127.0.0.2')).status).toBe(401);
    expect(reviews()).toBe(6);
  });

  it('the global budget caps every address together', async () => {
    const { ca, reviews } = await start({
      perClient: { perSecond: 1, burst: 100 },
      global: { perSecond: 1, burst: 3 },
      maxClients: 100,
    });
    const answers: { status: number; reason: string }[] = [];
    for (let i = 0; i < 8; i++) answers.push(await post(ca.port, junkToken(i), `127.0.0.${2 + i}`));
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 429, 429, 429, 429, 429]);
    expect(answers[3]?.reason).toBe('rate_limited_global');
    expect(reviews()).toBe(3);
  });

  it('junk CSRs are refused (400) before the token is reviewed: the reviewer is never called', async () => {
    const { ca, reviews } = await start({
      perClient: { perSecond: 1, burst: 1000 },
      global: { perSecond: 1, burst: 1000 },
      maxClients: 100,
    });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // A CSR whose self-signature is by another key: well-formed, but the requester lacks the key.
    const der = createCsr(privateKey, publicKey).der;
    const forged = Buffer.from(der);
    forged[forged.length - 5] = (forged[forged.length - 5] as number) ^ 0xff;
    const bodies = [
      JSON.stringify({ csr: 'not a csr', token: 'some-token-0123456789' }),
      JSON.stringify({
        csr: `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from('garbage').toString('base64')}\n-----END CERTIFICATE REQUEST-----`,
        token: 'some-token-0123456789',
      }),
      JSON.stringify({
        csr: `-----BEGIN CERTIFICATE REQUEST-----\n${forged.toString('base64')}\n-----END CERTIFICATE REQUEST-----`,
        token: 'some-token-0123456789',
      }),
      JSON.stringify({ csr: createCsr(other.privateKey, publicKey).pem, token: 'some-token-0123456789' }),
    ];
    for (let i = 0; i < 20; i++) {
      const a = await post(ca.port, bodies[i % bodies.length] as string);
      expect(a).toMatchObject({ status: 400, reason: 'csr_invalid' });
    }
    expect(reviews()).toBe(0);
    // A good CSR does reach the reviewer (which refuses the token).
    expect((await post(ca.port, junkToken(0))).status).toBe(401);
    expect(reviews()).toBe(1);
  });
});

describe('CsrRateLimiter (injected clock)', () => {
  it('refills at its rate, up to its burst', () => {
    let now = 0;
    const l = new CsrRateLimiter(
      { perClient: { perSecond: 0.5, burst: 2 }, global: { perSecond: 100, burst: 100 }, maxClients: 10 },
      () => now,
    );
    expect([l.take('a').ok, l.take('a').ok, l.take('a').ok]).toEqual([true, true, false]);
    expect(l.take('a')).toEqual({ ok: false, scope: 'client', retryAfterSeconds: 2 });
    now = 2000;
    expect([l.take('a').ok, l.take('a').ok]).toEqual([true, false]);
    now = 1_000_000;
    expect([l.take('a').ok, l.take('a').ok, l.take('a').ok]).toEqual([true, true, false]);
  });

  it('remembers at most maxClients addresses (a refused client does not drain the global budget)', () => {
    const l = new CsrRateLimiter(
      { perClient: { perSecond: 0.001, burst: 1 }, global: { perSecond: 0.001, burst: 3 }, maxClients: 2 },
      () => 0,
    );
    expect(l.take('a').ok).toBe(true);
    for (let i = 0; i < 10; i++) expect(l.take('a')).toMatchObject({ ok: false, scope: 'client' });
    expect(l.take('b').ok).toBe(true);
    expect(l.take('c').ok).toBe(true);
    expect(l.size).toBe(2);
    expect(l.take('d')).toMatchObject({ ok: false, scope: 'global' });
  });
});
