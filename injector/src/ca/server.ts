/**
 * The identity CA's own HTTPS listener (INJECTOR.caPort, not the webhook's port: proxies must
 * trust it through the mesh root, while the webhook's serving certificate answers to the API
 * server's CA bundle). Its serving certificate is issued by the mesh root and names the
 * injector's own SPIFFE identity, which is what proxies check.
 *
 *   POST /v1/certificates  {csr: PEM, token}  → {certificate, trustBundle, identity, expiresAt}
 *   GET  /v1/trust-bundle                     → the root(s), PEM
 *
 * Every issuance and every refusal is a security event at warn with a stable `event` field.
 * Certificate requests are rate-limited per client address and globally before anything else
 * (ca/ratelimit.ts); the streams on the same listener need the client's workload certificate
 * (ca/ndjson.ts).
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { CA_PATHS } from '@remora/proxy/contract';
import { issue } from '../pki/ca.js';
import type { Ca } from '../pki/ca.js';
import { generateKey } from '../pki/x509.js';
import { signCsr, spiffeId } from './authority.js';
import { csrPemToDer, parseCsr } from './csr.js';
import type { ParsedCsr } from './csr.js';
import { StreamHub } from './ndjson.js';
import type { StreamLimits, StreamStats } from './ndjson.js';
import { CsrRateLimiter } from './ratelimit.js';
import type { CsrRateLimits } from './ratelimit.js';
import { TokenRefusedError, TokenReviewUnavailableError } from './errors.js';
import { httpStatus } from '../errors.js';
import type { TokenReviewer } from './tokens.js';

/** A CSR plus a token fit in a few KiB; anything larger is refused before parsing. */
export const MAX_CA_BODY_BYTES = 64 * 1024;
/** The serving certificate is reissued long before this (on every start and at half-life). */
const SERVING_VALIDITY_DAYS = 30;

export type RefusalReason =
  | 'rate_limited'
  | 'rate_limited_global'
  | 'body_too_large'
  | 'malformed_request'
  | 'csr_invalid'
  | 'token_missing'
  | 'token_refused'
  | 'review_unavailable';

/**
 * Extra routes on the same listener (discovery, policy); return true when the request was
 * handled. A route that streams answers through `streams` (authentication, caps, backpressure).
 */
export type Route = (req: IncomingMessage, res: ServerResponse, streams: StreamHub) => boolean;

export interface CaServerOptions {
  readonly host?: string;
  readonly port: number;
  readonly ca: Ca;
  readonly trustDomain: string;
  readonly reviewer: TokenReviewer;
  readonly ttlSeconds: number;
  readonly logger: Logger;
  /** Namespace of the injector: its serving identity is spiffe://<td>/ns/<ns>/sa/<serviceAccount>. */
  readonly namespace: string;
  readonly serviceAccount: string;
  /** DNS names for clients that check names rather than the SPIFFE identity. */
  readonly dnsNames?: readonly string[];
  readonly routes?: readonly Route[];
  /** caps of the streams (default DEFAULT_STREAM_LIMITS) */
  readonly streamLimits?: StreamLimits;
  /** the CSR budget per client address and global (default DEFAULT_CSR_RATE_LIMITS) */
  readonly csrRateLimits?: CsrRateLimits;
  /** the clock of the CSR budget (tests) */
  readonly now?: () => number;
  readonly heartbeatMs?: number;
}

export interface CaServer {
  readonly port: number;
  readonly trustBundle: string;
  /** The SPIFFE identity this listener proves. */
  readonly identity: string;
  readonly stats: { issued: number; refused: Partial<Record<RefusalReason, number>> };
  readonly streams: StreamStats;
  close(): Promise<void>;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_CA_BODY_BYTES) {
      reject(new Refusal(413, 'body_too_large', `body larger than ${MAX_CA_BODY_BYTES} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_CA_BODY_BYTES) {
        reject(new Refusal(413, 'body_too_large', `body larger than ${MAX_CA_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startCaServer(o: CaServerOptions): Promise<CaServer> {
  const trustBundle = o.ca.certPem;
  const identity = spiffeId(o.trustDomain, { namespace: o.namespace, serviceAccount: o.serviceAccount });
  const stats: CaServer['stats'] = { issued: 0, refused: {} };
  const hub = new StreamHub(o.trustDomain, o.logger, o.streamLimits, o.heartbeatMs);
  const budget = new CsrRateLimiter(o.csrRateLimits, o.now);
  const serving = (): { key: string; cert: string; ca: string } => {
    const { privateKey, publicKey } = generateKey();
    const leaf = issue(o.ca, {
      subject: {},
      validityDays: SERVING_VALIDITY_DAYS,
      uris: [identity],
      dnsNames: o.dnsNames ?? [],
      extKeyUsage: ['serverAuth'],
      publicKey,
    });
    return {
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      cert: leaf.certPem,
      // Roots to verify stream clients' workload certificates with (ca/ndjson.ts).
      ca: trustBundle,
    };
  };

  const certificates = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    try {
      // First, before the body is read: a flood costs neither parsing nor a TokenReview.
      const verdict = budget.take(req.socket.remoteAddress ?? '');
      if (!verdict.ok) {
        res.setHeader('retry-after', String(verdict.retryAfterSeconds));
        res.setHeader('connection', 'close');
        throw new Refusal(
          429,
          verdict.scope === 'client' ? 'rate_limited' : 'rate_limited_global',
          verdict.scope === 'client'
            ? 'too many certificate requests from this address'
            : 'too many certificate requests',
        );
      }
      const raw = await readBody(req);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new Refusal(400, 'malformed_request', 'body is not JSON');
      }
      const { csr, token } = (body ?? {}) as { csr?: unknown; token?: unknown };
      if (typeof csr !== 'string')
        throw new Refusal(400, 'malformed_request', 'body needs "csr" (PEM string)');
      if (typeof token !== 'string' || token === '')
        throw new Refusal(401, 'token_missing', 'body needs "token"');
      // The CSR is checked whole (structure, key, self-signature) before the token is reviewed:
      // junk must not cost the API server anything.
      let parsed: ParsedCsr;
      try {
        parsed = parseCsr(csrPemToDer(csr));
      } catch (err) {
        throw new Refusal(400, 'csr_invalid', (err as Error).message);
      }
      let who;
      try {
        who = await o.reviewer(token);
      } catch (err) {
        if (err instanceof TokenRefusedError)
          throw new Refusal(httpStatus(err), 'token_refused', err.message);
        if (err instanceof TokenReviewUnavailableError)
          throw new Refusal(httpStatus(err), 'review_unavailable', err.message);
        throw err;
      }
      const issued = signCsr(o.ca, parsed, who, o.trustDomain, o.ttlSeconds);
      stats.issued += 1;
      o.logger.warn(
        {
          event: 'certificate_issued',
          identity: issued.identity,
          serial: issued.cert.serialNumber,
          notAfter: issued.cert.validTo,
          peer,
        },
        `certificate issued to ${issued.identity}`,
      );
      send(res, 200, {
        certificate: issued.certPem,
        trustBundle,
        identity: issued.identity,
        expiresAt: new Date(issued.cert.validTo).toISOString(),
      });
    } catch (err) {
      if (!(err instanceof Refusal)) {
        o.logger.error({ event: 'ca_error', err, peer }, 'CA error');
        send(res, 500, { error: 'internal error' });
        return;
      }
      stats.refused[err.reason] = (stats.refused[err.reason] ?? 0) + 1;
      o.logger.warn(
        { event: 'certificate_refused', reason: err.reason, detail: err.message, peer },
        `certificate refused: ${err.message}`,
      );
      if (err.status === 413 && !res.headersSent) res.setHeader('connection', 'close');
      send(res, err.status, { error: err.message, reason: err.reason });
    }
  };

  // A client certificate is asked for, not required: a proxy has none before its first CSR.
  const tlsOptions = { minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false } as const;
  const server = https.createServer({ ...serving(), ...tlsOptions }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'POST' && path === CA_PATHS.certificates) {
      void certificates(req, res);
      return;
    }
    if (req.method === 'GET' && path === CA_PATHS.trustBundle) {
      send(res, 200, trustBundle, 'application/x-pem-file');
      return;
    }
    for (const r of o.routes ?? []) if (r(req, res, hub)) return;
    send(res, 404, { error: `no route ${req.method} ${path}` });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const renew = setInterval(
    () => server.setSecureContext({ ...serving(), minVersion: 'TLSv1.2' }),
    (SERVING_VALIDITY_DAYS / 2) * 86_400_000,
  );
  renew.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    trustBundle,
    identity,
    stats,
    streams: hub.stats,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(renew);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
