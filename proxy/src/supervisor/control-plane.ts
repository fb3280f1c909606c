/**
 * The supervisor's own client of the injector (docs/upgrades.md): the engine-version stream,
 * bundle downloads and upgrade leases, on the CA listener the engine's discovery stream uses,
 * with the same checks (the injector proves its SPIFFE identity, the supervisor presents a
 * workload certificate). The engine's key never leaves the engine, so the supervisor gets a
 * certificate of its own from the CA with the pod's token (one more CSR per pod and renewal).
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { Logger as PinoLogger } from 'pino';
import { CA_PATHS, ENV, INJECTOR } from '../contract.js';
import type { ProxyConfig, Target } from '../config/config.js';
import { ndjsonStream } from '../discovery/ndjson.js';
import type { NdjsonStream } from '../discovery/ndjson.js';
import { Identity, expectIdentity } from '../identity/identity.js';
import { BundleError } from './errors.js';
import type { Logger } from './log.js';
import { ENGINE_VERSION_NAME, SHA256_DIGEST } from '../values.js';

/** What the injector says proxies should run (one line of the engine-version stream). */
export interface DesiredEngine {
  /** a bundle version name, or `builtin` (the engine the image ships) */
  readonly version: string;
  /** `sha256:<hex>` of the bundle; null for builtin */
  readonly digest: string | null;
  readonly size: number | null;
  /** why the injector cannot serve the named version (proxies keep what they run) */
  readonly error?: string;
}

export interface LeaseAnswer {
  readonly granted: boolean;
  readonly holders?: number;
  readonly maxConcurrent?: number;
  readonly retryAfterSeconds?: number;
  readonly error?: string;
}

const REQUEST_TIMEOUT_MS = 30_000;
const DIGEST = SHA256_DIGEST;
const VERSION_NAME = ENGINE_VERSION_NAME;

/** Validates one stream line; undefined for heartbeats and lines that are not a desired state. */
export function parseDesired(msg: Record<string, unknown>): DesiredEngine | undefined {
  const { version, digest, size, error } = msg;
  if (typeof version !== 'string' || !VERSION_NAME.test(version)) return undefined;
  if (typeof error === 'string') return { version, digest: null, size: null, error };
  if (version === 'builtin') return { version, digest: null, size: null };
  if (typeof digest !== 'string' || !DIGEST.test(digest)) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { version, digest, size };
}

export interface ControlPlaneOptions {
  readonly address: Target;
  readonly caAddress: Target;
  readonly caBundle: string;
  readonly tokenFile: string;
  readonly trustDomain: string;
  readonly pod: { readonly name: string | undefined; readonly namespace: string | undefined };
  readonly log: Logger;
}

export class ControlPlane {
  private readonly identity: Identity;
  private readonly serverIdentity: string;
  private stream: NdjsonStream | undefined;

  constructor(private readonly o: ControlPlaneOptions) {
    this.serverIdentity = `spiffe://${o.trustDomain}/ns/${INJECTOR.namespace}/sa/${INJECTOR.serviceAccount}`;
    this.identity = new Identity({
      ca: o.caAddress,
      tokenFile: o.tokenFile,
      caBundle: o.caBundle,
      caIdentity: this.serverIdentity,
      // the supervisor's logger writes the same lines; Identity uses info and warn only
      log: o.log.child({ part: 'control-plane' }) as unknown as PinoLogger,
    });
  }

  /** Builds the client from the proxy config; undefined when no CA or discovery address is set. */
  static fromConfig(p: ProxyConfig, log: Logger): ControlPlane | undefined {
    if (p.caAddress === undefined || p.discoveryAddress === undefined || p.tokenFile === undefined)
      return undefined;
    let caBundle = '';
    if (p.caBundleFile !== undefined) {
      try {
        caBundle = readFileSync(p.caBundleFile, 'utf8');
      } catch (err) {
        log.warn(
          { event: 'engine_rollout_off', reason: `${ENV.caBundleFile}: ${(err as Error).message}` },
          'control-plane upgrades off: no trust bundle',
        );
        return undefined;
      }
    }
    return new ControlPlane({
      address: p.discoveryAddress,
      caAddress: p.caAddress,
      caBundle,
      tokenFile: p.tokenFile,
      trustDomain: p.trustDomain,
      pod: { name: p.podName, namespace: p.podNamespace },
      log,
    });
  }

  /** Starts the certificate and the stream; `onDesired` gets every valid desired state. */
  watch(onDesired: (d: DesiredEngine) => void, onLost: (err: Error, retryMs: number) => void): void {
    void this.identity.start();
    this.stream = ndjsonStream({
      address: this.o.address,
      path: CA_PATHS.engineVersion,
      caBundle: this.o.caBundle,
      serverIdentity: this.serverIdentity,
      credentials: { current: () => this.identity.current, first: () => this.identity.first() },
      onMessage: (msg) => {
        const d = parseDesired(msg);
        if (d !== undefined) onDesired(d);
      },
      onLost,
    });
  }

  close(): void {
    this.stream?.close();
    this.identity.stop();
  }

  private options(method: string, path: string): https.RequestOptions {
    const m = this.identity.current;
    return {
      host: this.o.address.host,
      port: this.o.address.port,
      method,
      path,
      ca: this.o.caBundle,
      ...(m !== undefined ? { key: m.keyPem, cert: m.certPem } : {}),
      checkServerIdentity: expectIdentity(this.serverIdentity),
      agent: false,
      timeout: REQUEST_TIMEOUT_MS,
    };
  }

  /** Downloads a bundle by digest, refusing more than `maxBytes` (it is hashed by the caller). */
  fetchBundle(digest: string, maxBytes: number): Promise<Buffer> {
    const hex = digest.replace(/^sha256:/, '');
    return new Promise((resolve, reject) => {
      const req = https.request(this.options('GET', `${CA_PATHS.engineBundle}${hex}`), (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new BundleError(`the injector answered ${res.statusCode ?? 0} for ${digest}`));
          return;
        }
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (declared > maxBytes) {
          req.destroy();
          reject(new BundleError(`bundle is ${declared} bytes, more than ${maxBytes}`));
          return;
        }
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > maxBytes) {
            req.destroy();
            reject(new BundleError(`bundle is more than ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('bundle download timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  /** One lease call (`acquire`, `release` or `report`); the pod is named for the injector's records. */
  lease(body: Readonly<Record<string, unknown>>): Promise<LeaseAnswer> {
    const text = JSON.stringify({
      ...body,
      pod: this.o.pod.name ?? null,
      namespace: this.o.pod.namespace ?? null,
    });
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          ...this.options('POST', CA_PATHS.engineLease),
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            b += c;
            if (b.length > 64 * 1024) req.destroy(new Error('lease answer too large'));
          });
          res.on('end', () => {
            try {
              const v = JSON.parse(b) as LeaseAnswer;
              if (res.statusCode !== 200 && v.granted !== false)
                reject(new Error(`lease call answered ${res.statusCode ?? 0}: ${v.error ?? b}`));
              else resolve(v);
            } catch {
              reject(new Error(`lease call answered ${res.statusCode ?? 0} without JSON`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('lease call timed out')));
      req.on('error', reject);
      req.end(text);
    });
  }

  /** Waits for the first certificate (calls before it would be refused). */
  ready(): Promise<unknown> {
    return this.identity.first();
  }
}
