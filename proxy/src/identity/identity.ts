/**
 * The proxy's workload identity (DESIGN §3): an ECDSA P-256 key generated in memory (never
 * written anywhere), a CSR, a certificate from the CA at start, renewal at 70 % of its lifetime
 * (a little earlier with jitter, so a fleet started together does not renew together), retries
 * with exponential backoff and jitter when the CA is down. Whoever serves TLS subscribes with
 * `onChange` and swaps its SecureContext: new handshakes get the new certificate, connections
 * already up keep theirs.
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { PeerCertificate, SecureContextOptions } from 'node:tls';
import { CA_PATHS } from '../contract.js';
import type { Target } from '../config/config.js';
import type { Logger } from '../log.js';
import { createCsr } from './csr.js';

export interface IdentityMaterial {
  /** PKCS#8 PEM of the in-memory key */
  readonly keyPem: string;
  readonly certPem: string;
  readonly cert: X509Certificate;
  /** the SPIFFE URI the CA put in the certificate */
  readonly identity: string;
  /** PEM roots this proxy trusts (peers and the CA) */
  readonly trustBundle: string;
  readonly notAfter: number;
}

export interface IdentityOptions {
  readonly ca: Target;
  readonly tokenFile: string;
  /** roots to verify the CA's own certificate with (the mesh trust bundle) */
  readonly caBundle: string;
  /** SPIFFE identity the CA listener must present */
  readonly caIdentity: string;
  readonly log: Logger;
  /** fraction of the lifetime after which to renew (0.7) */
  readonly renewFraction?: number;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  readonly now?: () => number;
  readonly random?: () => number;
}

const DEFAULT_BACKOFF = Object.freeze({ baseMs: 500, maxMs: 30_000 });
/** The renewal moment is pulled earlier by up to this fraction of the lifetime. */
const RENEW_JITTER = 0.05;
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * The SecureContext options of either end of the mesh tunnel for this identity (one place, so
 * the two ends cannot drift). TLS 1.3 only; the suites stay OpenSSL's default order
 * (AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM): ordering them otherwise measured no difference
 * on the tunnel's small records (docs/performance.md, "Mesh hop"). The certificates are ECDSA
 * P-256 (the key generated below, and the CA's root).
 */
export function tunnelContextOptions(m: IdentityMaterial): SecureContextOptions {
  return { key: m.keyPem, cert: m.certPem, ca: m.trustBundle, minVersion: 'TLSv1.3' };
}

/** The URI SANs of a peer certificate (`subjectaltname` is "URI:a, DNS:b, ..."). */
export function uriSans(cert: { subjectaltname?: string | undefined } | PeerCertificate): string[] {
  const san = cert.subjectaltname ?? '';
  const out: string[] = [];
  for (const part of san.split(', ')) if (part.startsWith('URI:')) out.push(part.slice(4));
  return out;
}

/** The TLS name check against one expected SPIFFE identity (instead of a host name). */
export function expectIdentity(expected: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const uris = uriSans(cert);
    if (uris.length === 1 && uris[0] === expected) return undefined;
    const err = new Error(`peer identity ${uris.join(',') || 'none'} is not ${expected}`);
    (err as Error & { code: string }).code = 'ERR_REMORA_IDENTITY_MISMATCH';
    return err;
  };
}

export class Identity {
  private material: IdentityMaterial | undefined;
  private readonly listeners: ((m: IdentityMaterial) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly loaded: Promise<IdentityMaterial>;
  private resolveLoaded: ((m: IdentityMaterial) => void) | undefined;

  constructor(private readonly o: IdentityOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.loaded = new Promise((resolve) => (this.resolveLoaded = resolve));
  }

  /** Settles at the first certificate, whoever started the fetching (the injector streams wait on it). */
  first(): Promise<IdentityMaterial> {
    return this.loaded;
  }

  get current(): IdentityMaterial | undefined {
    return this.material;
  }

  get ready(): boolean {
    return this.material !== undefined && this.material.notAfter > this.now();
  }

  onChange(fn: (m: IdentityMaterial) => void): void {
    this.listeners.push(fn);
  }

  /** Starts fetching; resolves once, at the first certificate (retrying meanwhile). */
  start(): Promise<IdentityMaterial> {
    const first = new Promise<IdentityMaterial>((resolve) => {
      const once = (m: IdentityMaterial): void => {
        const i = this.listeners.indexOf(once);
        if (i >= 0) this.listeners.splice(i, 1);
        resolve(m);
      };
      this.listeners.push(once);
    });
    this.attempt();
    return first;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.attempt(), Math.max(0, ms));
    this.timer.unref();
  }

  private attempt(): void {
    this.fetch().then(
      (m) => {
        this.failures = 0;
        this.material = m;
        const received = this.now();
        const lifetime = m.notAfter - received;
        const fraction = (this.o.renewFraction ?? 0.7) - this.random() * RENEW_JITTER;
        this.o.log.info(
          { event: 'certificate_loaded', identity: m.identity, notAfter: new Date(m.notAfter).toISOString() },
          'workload certificate loaded',
        );
        for (const l of [...this.listeners]) l(m);
        this.resolveLoaded?.(m);
        this.resolveLoaded = undefined;
        this.schedule(lifetime * fraction);
      },
      (err: unknown) => {
        this.failures += 1;
        const b = this.o.backoff ?? DEFAULT_BACKOFF;
        const cap = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(this.failures - 1, 16));
        // Half fixed, half random: retries spread out but never collapse to zero.
        let delay = cap / 2 + (this.random() * cap) / 2;
        // With a certificate still valid, never wait past its expiry for the next try.
        if (this.material) delay = Math.min(delay, Math.max(0, this.material.notAfter - this.now() - 1000));
        this.o.log.warn(
          { event: 'certificate_fetch_failed', attempt: this.failures, retryMs: Math.round(delay), err },
          `cannot get a workload certificate: ${(err as Error).message}`,
        );
        this.schedule(delay);
      },
    );
  }

  private async fetch(): Promise<IdentityMaterial> {
    const token = readFileSync(this.o.tokenFile, 'utf8').trim();
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr = createCsr(privateKey, publicKey).pem;
    const reply = await this.post(JSON.stringify({ csr, token }));
    const body = JSON.parse(reply) as { certificate?: unknown; trustBundle?: unknown };
    if (typeof body.certificate !== 'string' || typeof body.trustBundle !== 'string')
      throw new Error('CA answer lacks certificate or trustBundle');
    const cert = new X509Certificate(body.certificate);
    if (!cert.checkPrivateKey(privateKey)) throw new Error('CA returned a certificate for another key');
    const uris = uriSans({ subjectaltname: cert.subjectAltName });
    if (uris.length !== 1 || !(uris[0] as string).startsWith('spiffe://'))
      throw new Error(
        `CA returned a certificate without one SPIFFE identity: ${cert.subjectAltName ?? 'none'}`,
      );
    return {
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      certPem: body.certificate,
      cert,
      identity: uris[0] as string,
      // The mounted bundle is the operator's trust; the CA's adds roots it is rotating to.
      trustBundle: this.o.caBundle.includes(body.trustBundle.trim())
        ? this.o.caBundle
        : `${this.o.caBundle.trim()}\n${body.trustBundle}`,
      notAfter: new Date(cert.validTo).getTime(),
    };
  }

  private post(body: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.o.ca.host,
          port: this.o.ca.port,
          method: 'POST',
          path: CA_PATHS.certificates,
          ca: this.o.caBundle,
          checkServerIdentity: expectIdentity(this.o.caIdentity),
          agent: false,
          timeout: REQUEST_TIMEOUT_MS,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 200) resolve(text);
            else reject(new Error(`CA answered ${res.statusCode}: ${text.slice(0, 200)}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('CA request timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
