/**
 * The supervisor's own HTTP listeners: health (15020), metrics (15090) and admin (15000). They
 * live in the supervisor, not the engine, so they keep answering while engines crash, restart
 * and are replaced. Thin I/O shell: every decision is the Supervisor's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
import { ADMIN_PATHS, HEALTH_PATHS, LOG_LEVELS, METRICS_PATH } from '../contract.js';
import type { LogLevel } from './log.js';
import { CONTENT_TYPE } from '../metrics/registry.js';
import {
  InternalError,
  LogLevelError,
  MethodError,
  NotFoundError,
  PROXY_ERRORS,
  UnauthorizedError,
  UpgradeBusyError,
  UpgradeRequestError,
  httpStatusOf,
} from '../errors.js';
import type { RemoraError } from '../errors.js';
import { runProbe } from './probes.js';
import type { AppProbe } from './probes.js';
import type { Supervisor, UpgradeRequest } from './supervisor.js';
import { bearerMatches } from './token.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface HttpDeps {
  readonly supervisor: Supervisor;
  readonly token: string;
  readonly probes: ReadonlyMap<string, AppProbe>;
  readonly log: Logger;
  /** /quitquitquit: exit promptly (after the answer is sent). */
  readonly quit: () => void;
  /** /quitquitquit without the token (the pod asked for it by annotation); default: token needed */
  readonly quitWithoutToken?: boolean;
}

/** A control request's head must be complete within this (Node's default is 60 s). */
const CONTROL_HEAD_TIMEOUT_MS = 10_000;
/** Concurrent connections per control listener; more are closed at accept. */
const CONTROL_MAX_CONNECTIONS = 256;

/** Upgrade bodies are tiny; anything bigger is a mistake or an attack. */
const MAX_BODY = 64 * 1024;

function send(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** An admin error as JSON `{error: code, message, ...extra}`, with the registry's status. */
function sendError(
  res: http.ServerResponse,
  err: RemoraError,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): void {
  const status = httpStatusOf(PROXY_ERRORS, err.code) ?? 500;
  send(res, status, { error: err.code, message: err.message, ...extra }, headers);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new UpgradeRequestError([`body larger than ${MAX_BODY} bytes`]));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `{"version"?: string, "config"?: object}`; every problem named. */
export function parseUpgradeBody(text: string): UpgradeRequest {
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UpgradeRequestError([`body is not valid JSON: ${(err as Error).message}`]);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UpgradeRequestError(['body must be a JSON object']);
  const o = v as Record<string, unknown>;
  const errors: string[] = [];
  for (const k of Object.keys(o))
    if (k !== 'version' && k !== 'config')
      errors.push(`unknown field ${JSON.stringify(k)} (expected version, config)`);
  if (o.version !== undefined && typeof o.version !== 'string') errors.push('version must be a string');
  if (
    o.config !== undefined &&
    (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config))
  )
    errors.push('config must be a JSON object of config-file fields');
  if (errors.length > 0) throw new UpgradeRequestError(errors);
  return {
    ...(typeof o.version === 'string' ? { version: o.version } : {}),
    ...(o.config !== undefined ? { config: o.config as Record<string, unknown> } : {}),
  };
}

function pathOf(req: http.IncomingMessage): { path: string; query: URLSearchParams } {
  const u = new URL(req.url ?? '/', 'http://x');
  return { path: u.pathname, query: u.searchParams };
}

function health(deps: HttpDeps): http.RequestListener {
  return (req, res) => {
    const { path } = pathOf(req);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    if (path === HEALTH_PATHS.ready) {
      const r = deps.supervisor.readiness();
      return send(res, r.ready ? 200 : 503, `${r.reason}\n`);
    }
    if (path === HEALTH_PATHS.live) {
      const l = deps.supervisor.liveness();
      return send(res, l.live ? 200 : 503, `${l.reason}\n`);
    }
    if (path.startsWith(HEALTH_PATHS.appHealthPrefix)) {
      const probe = deps.probes.get(path);
      if (probe === undefined) return send(res, 404, `no app probe configured for ${path}\n`);
      runProbe(probe).then(
        (r) => send(res, r.status, `${r.detail}\n`),
        (err: unknown) => send(res, 503, `probe error: ${String(err)}\n`),
      );
      return;
    }
    send(res, 404, 'not found\n');
  };
}

function metrics(deps: HttpDeps): http.RequestListener {
  return (req, res) => {
    if (pathOf(req).path !== METRICS_PATH) return send(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    deps.supervisor.renderMetrics().then(
      (text) => send(res, 200, text, { 'content-type': CONTENT_TYPE }),
      (err: unknown) => send(res, 500, `metrics error: ${String(err)}\n`),
    );
  };
}

function admin(deps: HttpDeps): http.RequestListener {
  const { supervisor, log } = deps;
  const authorized = (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    if (bearerMatches(req.headers.authorization, deps.token)) return true;
    log.warn(
      { event: 'admin_unauthorized', path: req.url, method: req.method, remote: req.socket.remoteAddress },
      'admin call without a valid token',
    );
    sendError(res, new UnauthorizedError(), {}, { 'www-authenticate': 'Bearer' });
    return false;
  };
  return (req, res) => {
    const { path, query } = pathOf(req);
    const post = req.method === 'POST';
    const onlyPost = (): void => sendError(res, new MethodError(path, 'POST'), {}, { allow: 'POST' });
    switch (path) {
      case ADMIN_PATHS.config:
        if (req.method !== 'GET') return sendError(res, new MethodError(path, 'GET'), {}, { allow: 'GET' });
        return send(res, 200, supervisor.status());
      case ADMIN_PATHS.upgrade:
        if (!post) return onlyPost();
        if (!authorized(req, res)) return;
        readBody(req)
          .then((text) => supervisor.upgrade(parseUpgradeBody(text)))
          .then(
            (result) => send(res, result.ok ? 200 : 500, result),
            (err: unknown) => {
              if (err instanceof UpgradeRequestError) return sendError(res, err, { errors: err.errors });
              if (err instanceof UpgradeBusyError) return sendError(res, err);
              log.error({ err }, 'upgrade failed');
              sendError(res, new InternalError(err));
            },
          );
        return;
      case ADMIN_PATHS.drain:
        if (!post) return onlyPost();
        if (!authorized(req, res)) return;
        supervisor.drain().then(
          () => send(res, 200, { drained: true }),
          (err: unknown) => sendError(res, new InternalError(err)),
        );
        return;
      case ADMIN_PATHS.quit:
        if (!post) return onlyPost();
        // The app shares the pod's loopback: without the token it (or an SSRF in it) could stop
        // the proxy while capture stays in place. Only a pod that asked may skip it.
        if (deps.quitWithoutToken !== true && !authorized(req, res)) return;
        res.on('finish', () => deps.quit());
        return send(res, 200, { quitting: true });
      case ADMIN_PATHS.logging: {
        if (req.method === 'GET') return send(res, 200, { level: log.level });
        if (!post) return onlyPost();
        if (!authorized(req, res)) return;
        const level = query.get('level');
        if (level === null || !(LOG_LEVELS as readonly string[]).includes(level))
          return sendError(res, new LogLevelError(LOG_LEVELS));
        log.level = level as LogLevel;
        return send(res, 200, { level });
      }
      default:
        return sendError(res, new NotFoundError(path));
    }
  };
}

function listen(server: http.Server, at: Endpoint): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export interface SupervisorServers {
  readonly ports: { readonly health: number; readonly metrics: number; readonly admin: number };
  close(): void;
}

export async function startServers(
  at: { readonly health: Endpoint; readonly metrics: Endpoint; readonly admin: Endpoint },
  deps: HttpDeps,
): Promise<SupervisorServers> {
  // 15020 and 15090 are reachable from off the pod: a slow head gets 408 after a few seconds
  // and the connection count is bounded, so a hostile client cannot hold them open.
  const opts: http.ServerOptions = {
    headersTimeout: CONTROL_HEAD_TIMEOUT_MS,
    connectionsCheckingInterval: 1000,
  };
  const servers = {
    health: http.createServer(opts, health(deps)),
    metrics: http.createServer(opts, metrics(deps)),
    admin: http.createServer(opts, admin(deps)),
  };
  for (const s of Object.values(servers)) {
    s.keepAliveTimeout = 5000;
    s.maxConnections = CONTROL_MAX_CONNECTIONS;
  }
  const ports = {
    health: await listen(servers.health, at.health),
    metrics: await listen(servers.metrics, at.metrics),
    admin: await listen(servers.admin, at.admin),
  };
  return {
    ports,
    close(): void {
      for (const s of Object.values(servers)) {
        s.close();
        s.closeAllConnections();
      }
    },
  };
}
