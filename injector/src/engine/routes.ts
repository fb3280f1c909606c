/**
 * The engine routes on the CA listener (docs/upgrades.md), beside discovery and policy, behind
 * the same workload-certificate check:
 *   GET  /v1/engine-version   NDJSON: {"version","digest","size"} (or {"version","error"}) at
 *                             once and at every change of the mesh config's `engine`
 *   GET  /v1/engine/<sha256>  the bundle with that digest (64 lower-case hex digits); 404 for
 *                             any digest not announced, so no path ever comes from the request
 *   POST /v1/engine-lease     {op: acquire|release|report, version, digest?, pod, ...}
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { CA_PATHS } from '@remora/proxy/contract';
import type { Route } from '../ca/server.js';
import type { StreamClient, StreamHub } from '../ca/ndjson.js';
import type { EngineSpec, MeshConfig } from '../config/mesh.js';
import { BUILTIN_ENGINE } from '../config/mesh.js';
import type { BundleDir } from './bundles.js';
import type { Lease, LeaseVerdict } from './leases.js';
import { ENGINE_VERSION_NAME, SHA256_DIGEST } from '@remora/proxy/values';

/** What proxies are told to run. */
export type Announcement =
  { version: string; digest: string | null; size: number | null } | { version: string; error: string };

export interface LeaseStore {
  acquire(
    holder: string,
    pod: string,
    version: string,
    maxConcurrent: number,
    leaseSeconds: number,
  ): Promise<{ verdict: LeaseVerdict; expired: Lease[] }> | { verdict: LeaseVerdict; expired: Lease[] };
  release(holder: string): Promise<Lease | undefined> | Lease | undefined;
}

/** What a proxy said about its engine (a pod annotation in Kubernetes, engine/report.ts). */
export interface EngineReport {
  readonly pod: string | null;
  readonly namespace: string | null;
  readonly version: string;
  readonly desired: string | null;
  readonly state: string;
  readonly detail: string | null;
  readonly at: string;
}

export interface EngineRoutesOptions {
  readonly bundles: BundleDir;
  readonly mesh: () => MeshConfig;
  readonly leases: LeaseStore;
  readonly logger: Logger;
  /** where reports go besides the log (Kubernetes: the pod's annotation) */
  readonly onReport?: (client: StreamClient, peer: string, report: EngineReport) => void;
  /** how often the mesh config is looked at for a new engine (ms) */
  readonly pollMs?: number;
}

export interface EngineRoutes {
  readonly routes: Route[];
  /** the current announcement (tests, logs) */
  current(): Announcement | undefined;
  /** the latest report of each pod */
  readonly reports: Map<string, EngineReport>;
  stop(): void;
}

const MAX_LEASE_BODY = 4096;
const NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const VERSION = ENGINE_VERSION_NAME;
const STATES = new Set([
  'idle',
  'current',
  'waiting-lease',
  'fetching',
  'upgrading',
  'rolled-back',
  'refused',
  'retrying',
]);

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function readSmallBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let n = 0;
    const chunks: Buffer[] = [];
    const onData = (c: Buffer): void => {
      n += c.length;
      if (n > max) {
        // stop keeping it; the rest is read and dropped so the 413 reaches the client
        req.off('data', onData);
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(undefined));
  });
}

export function engineRoutes(o: EngineRoutesOptions): EngineRoutes {
  const subscribers = new Set<(line: unknown) => void>();
  const reports = new Map<string, EngineReport>();
  let announced: Announcement | undefined;
  let lastSpec = '';
  let resolving = false;

  const announce = async (spec: EngineSpec): Promise<void> => {
    let next: Announcement;
    if (spec.version === BUILTIN_ENGINE) next = { version: BUILTIN_ENGINE, digest: null, size: null };
    else {
      const r = await o.bundles.resolve(spec.version);
      if (!r.ok) next = { version: spec.version, error: r.error };
      else if (spec.digest !== undefined) {
        // The operator's pin is what proxies check, end to end: a bundle directory that was
        // tampered with cannot make them run anything. The file is served under the pin as it
        // is, and every proxy refuses it if it does not hash to the pin.
        o.bundles.pin(spec.digest, r.bundle);
        if (spec.digest !== r.bundle.digest)
          o.logger.warn(
            {
              event: 'engine_bundle_pin_mismatch',
              version: spec.version,
              pinned: spec.digest,
              file: r.bundle.digest,
            },
            `the bundle of ${spec.version} hashes to ${r.bundle.digest}, the mesh config pins ${spec.digest}: proxies will refuse it`,
          );
        next = { version: spec.version, digest: spec.digest, size: r.bundle.size };
      } else next = { version: spec.version, digest: r.bundle.digest, size: r.bundle.size };
    }
    if (JSON.stringify(next) === JSON.stringify(announced)) return;
    announced = next;
    if ('error' in next)
      o.logger.warn(
        { event: 'engine_version_unavailable', version: next.version, reason: next.error },
        `engine ${next.version} cannot be served: ${next.error}; proxies keep what they run`,
      );
    else
      o.logger.info(
        { event: 'engine_version_announced', version: next.version, digest: next.digest, size: next.size },
        `proxies are told to run engine ${next.version}`,
      );
    for (const s of subscribers) s(next);
  };

  const poll = (): void => {
    const spec = o.mesh().engine;
    const key = JSON.stringify(spec);
    // an unavailable version is looked at again on every poll: its file may appear
    if (resolving || (key === lastSpec && announced !== undefined && !('error' in announced))) return;
    lastSpec = key;
    resolving = true;
    announce(spec).then(
      () => (resolving = false),
      (err: unknown) => {
        resolving = false;
        o.logger.error({ event: 'engine_announce_failed', err }, 'cannot announce the engine version');
      },
    );
  };
  poll();
  const timer = setInterval(poll, o.pollMs ?? 1000);
  timer.unref();

  const versionRoute: Route = (req, res, streams) => {
    if ((req.url ?? '').split('?')[0] !== CA_PATHS.engineVersion) return false;
    if (req.method !== 'GET') {
      json(res, 405, { error: `${CA_PATHS.engineVersion} needs GET` });
      return true;
    }
    streams.serve(req, res, announced ?? {}, (send) => {
      subscribers.add(send);
      return () => subscribers.delete(send);
    });
    return true;
  };

  /** The verified client, or an answer already sent (same refusals as the streams). */
  const client = (
    req: IncomingMessage,
    res: ServerResponse,
    streams: StreamHub,
  ): StreamClient | undefined => {
    const c = streams.authenticate(req);
    if (typeof c !== 'string') return c;
    o.logger.warn(
      { event: 'engine_request_refused', reason: c, peer: req.socket.remoteAddress, path: req.url },
      'engine request refused: no workload certificate of this trust domain',
    );
    json(res, c === 'no_client_certificate' ? 401 : 403, {
      error: 'a workload certificate of this mesh is needed',
      reason: c,
    });
    return undefined;
  };

  const bundleRoute: Route = (req, res, streams) => {
    const path = (req.url ?? '').split('?')[0] as string;
    if (!path.startsWith(CA_PATHS.engineBundle)) return false;
    if (req.method !== 'GET') {
      json(res, 405, { error: 'engine bundles need GET' });
      return true;
    }
    const who = client(req, res, streams);
    if (who === undefined) return true;
    const bundle = o.bundles.byHex(path.slice(CA_PATHS.engineBundle.length));
    if (bundle === undefined) {
      json(res, 404, {
        error: 'no engine bundle with this digest (GET /v1/engine/<64 lower-case hex digits>)',
      });
      return true;
    }
    o.logger.info(
      {
        event: 'engine_bundle_served',
        version: bundle.version,
        digest: bundle.digest,
        identity: who.identity,
        peer: req.socket.remoteAddress,
      },
      'engine bundle served',
    );
    res.writeHead(200, {
      'content-type': 'application/gzip',
      'content-length': bundle.size,
      'cache-control': 'no-store',
    });
    // exactly the bytes that were hashed' length; what they are is for the proxy to check
    const file = createReadStream(bundle.path, { start: 0, end: Math.max(0, bundle.size - 1) });
    file.on('error', () => res.destroy());
    if (bundle.size === 0) res.end();
    else file.pipe(res);
    return true;
  };

  const leaseRoute: Route = (req, res, streams) => {
    if ((req.url ?? '').split('?')[0] !== CA_PATHS.engineLease) return false;
    if (req.method !== 'POST') {
      json(res, 405, { error: `${CA_PATHS.engineLease} needs POST` });
      return true;
    }
    const who = client(req, res, streams);
    if (who === undefined) return true;
    void handleLease(req, res, who).catch((err: unknown) => {
      o.logger.error({ event: 'engine_lease_error', err }, 'engine lease call failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
    });
    return true;
  };

  const handleLease = async (req: IncomingMessage, res: ServerResponse, who: StreamClient): Promise<void> => {
    const text = await readSmallBody(req, MAX_LEASE_BODY);
    if (text === undefined) {
      res.setHeader('connection', 'close');
      return json(res, 413, { error: `body larger than ${MAX_LEASE_BODY} bytes` });
    }
    let body: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(text);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      body = v as Record<string, unknown>;
    } catch {
      return json(res, 400, { error: 'body must be a JSON object {op, version, ...}' });
    }
    const str = (k: string, re: RegExp): string | null | false => {
      const v = body[k];
      if (v === undefined || v === null) return null;
      return typeof v === 'string' && re.test(v) ? v : false;
    };
    const version = str('version', VERSION);
    const pod = str('pod', NAME);
    const namespace = str('namespace', NAME);
    if (version === false || version === null || pod === false || namespace === false)
      return json(res, 400, {
        error: 'version must be a bundle name; pod and namespace Kubernetes names or null',
      });
    const podName = `${namespace ?? '?'}/${pod ?? '?'}`;
    const peer = req.socket.remoteAddress ?? '';
    const mesh = o.mesh().engine;
    switch (body.op) {
      case 'acquire': {
        const a = announced;
        const digest = str('digest', SHA256_DIGEST);
        if (
          a === undefined ||
          'error' in a ||
          a.version !== version ||
          (a.digest ?? null) !== (digest || null)
        )
          return json(res, 409, {
            granted: false,
            error: `not the engine the mesh config names now (${a === undefined ? 'none yet' : a.version})`,
          });
        const { verdict, expired } = await o.leases.acquire(
          who.key,
          podName,
          version,
          mesh.rollout.maxConcurrent,
          mesh.rollout.leaseSeconds,
        );
        for (const l of expired)
          o.logger.warn(
            { event: 'engine_lease_expired', pod: l.pod, version: l.version },
            `upgrade lease of ${l.pod} expired unreleased`,
          );
        if (verdict.granted)
          o.logger.info(
            {
              event: 'engine_lease_granted',
              pod: podName,
              identity: who.identity,
              peer,
              version,
              holders: verdict.holders,
              maxConcurrent: verdict.maxConcurrent,
            },
            `upgrade lease to ${version} granted to ${podName} (${verdict.holders} of ${verdict.maxConcurrent})`,
          );
        return json(res, 200, verdict);
      }
      case 'release': {
        const l = await o.leases.release(who.key);
        const outcome = typeof body.outcome === 'string' ? body.outcome.slice(0, 32) : null;
        if (l !== undefined)
          o.logger.info(
            {
              event: 'engine_lease_released',
              pod: podName,
              version: l.version,
              outcome,
              heldMs: Date.now() - l.grantedAt,
            },
            `upgrade lease of ${podName} released (${outcome ?? 'no outcome'})`,
          );
        return json(res, 200, { released: l !== undefined });
      }
      case 'report': {
        const state = typeof body.state === 'string' && STATES.has(body.state) ? body.state : undefined;
        const desired = str('desired', VERSION);
        if (state === undefined || desired === false)
          return json(res, 400, { error: `state must be one of ${[...STATES].join(', ')}` });
        const report: EngineReport = {
          pod,
          namespace,
          version,
          desired,
          state,
          detail: typeof body.detail === 'string' ? body.detail.slice(0, 512) : null,
          at: new Date().toISOString(),
        };
        reports.set(`${who.key}|${podName}`, report);
        o.logger.info(
          {
            event: 'engine_reported',
            pod: podName,
            identity: who.identity,
            peer,
            version,
            desired,
            state,
            detail: report.detail,
          },
          `${podName} runs engine ${version} (${state})`,
        );
        o.onReport?.(who, peer, report);
        return json(res, 200, { ok: true });
      }
      default:
        return json(res, 400, { error: 'op must be acquire, release or report' });
    }
  };

  return {
    routes: [versionRoute, bundleRoute, leaseRoute],
    current: () => announced,
    reports,
    stop: () => clearInterval(timer),
  };
}
