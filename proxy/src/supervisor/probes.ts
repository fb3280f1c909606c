/**
 * Rewritten app probes (DESIGN §4): the injector points the kubelet's httpGet/tcpSocket/grpc
 * probes at `15020 /app-health/<container>/<livez|readyz|startupz>` and puts the originals in
 * REMORA_APP_PROBES, a JSON object keyed by that path (format: docs/injector.md). The
 * supervisor runs the original check from inside the pod, so the kubelet sees the app's real
 * status even under strict mTLS and while engines change. Probe traffic leaves as the proxy's
 * UID, so it is never captured.
 */
import http from 'node:http';
import type * as Http2 from 'node:http2';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import { HEALTH_PATHS } from '../contract.js';
import { ConfigError } from '../errors.js';
import { isPort } from '../values.js';

// HTTPS and gRPC probes are rare; their modules (TLS, HTTP/2) load on first use, so a
// supervisor without them stays smaller.
const require = createRequire(import.meta.url);
let httpsModule: typeof Https | undefined;
let http2Module: typeof Http2 | undefined;
const https = (): typeof Https => (httpsModule ??= require('node:https') as typeof Https);
const http2 = (): typeof Http2 => (http2Module ??= require('node:http2') as typeof Http2);

export type AppProbe =
  | {
      readonly kind: 'http';
      readonly port: number;
      readonly path: string;
      readonly scheme: 'HTTP' | 'HTTPS';
      readonly host?: string;
      readonly headers?: readonly { readonly name: string; readonly value: string }[];
      readonly timeoutSeconds: number;
    }
  | { readonly kind: 'tcp'; readonly port: number; readonly host?: string; readonly timeoutSeconds: number }
  | {
      readonly kind: 'grpc';
      readonly port: number;
      readonly service?: string;
      readonly timeoutSeconds: number;
    };

export interface ProbeResult {
  /** The status the kubelet gets: the app's own for httpGet, 200/503 otherwise. */
  readonly status: number;
  readonly detail: string;
}

const PATH = /^\/app-health\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/(livez|readyz|startupz)$/;
const DEFAULT_HOST = '127.0.0.1';

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkProbe(where: string, v: unknown, errors: string[]): AppProbe | undefined {
  if (!isObj(v)) {
    errors.push(`${where}: must be an object`);
    return undefined;
  }
  const before = errors.length;
  const port = v.port;
  if (!isPort(port)) errors.push(`${where}.port: not a port (1..65535): ${JSON.stringify(port)}`);
  const timeoutSeconds = v.timeoutSeconds === undefined ? 1 : v.timeoutSeconds;
  if (typeof timeoutSeconds !== 'number' || !(timeoutSeconds > 0) || timeoutSeconds > 3600)
    errors.push(
      `${where}.timeoutSeconds: not a positive number of seconds: ${JSON.stringify(v.timeoutSeconds)}`,
    );
  if (v.host !== undefined && (typeof v.host !== 'string' || !/^[A-Za-z0-9.:_-]+$/.test(v.host)))
    errors.push(`${where}.host: not a host name or IP address: ${JSON.stringify(v.host)}`);
  const base = { port: port as number, timeoutSeconds: timeoutSeconds as number };
  const host = typeof v.host === 'string' ? { host: v.host } : {};
  switch (v.kind) {
    case 'http': {
      if (typeof v.path !== 'string' || !v.path.startsWith('/'))
        errors.push(`${where}.path: must start with "/": ${JSON.stringify(v.path)}`);
      const scheme = v.scheme ?? 'HTTP';
      if (scheme !== 'HTTP' && scheme !== 'HTTPS')
        errors.push(`${where}.scheme: must be HTTP or HTTPS: ${JSON.stringify(scheme)}`);
      const headers = v.headers ?? [];
      const okHeaders =
        Array.isArray(headers) &&
        headers.every(
          (h) =>
            isObj(h) &&
            typeof h.name === 'string' &&
            /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h.name) &&
            typeof h.value === 'string' &&
            !/[\r\n\0]/.test(h.value),
        );
      if (!okHeaders)
        errors.push(`${where}.headers: must be a list of {name, value} with valid header names and values`);
      if (errors.length > before) return undefined;
      return {
        kind: 'http',
        ...base,
        ...host,
        path: v.path as string,
        scheme: scheme as 'HTTP' | 'HTTPS',
        headers: headers as { name: string; value: string }[],
      };
    }
    case 'tcp':
      return errors.length > before ? undefined : { kind: 'tcp', ...base, ...host };
    case 'grpc':
      if (v.service !== undefined && typeof v.service !== 'string')
        errors.push(`${where}.service: must be a string`);
      if (errors.length > before) return undefined;
      return { kind: 'grpc', ...base, ...(typeof v.service === 'string' ? { service: v.service } : {}) };
    default:
      errors.push(`${where}.kind: must be http, tcp or grpc: ${JSON.stringify(v.kind)}`);
      return undefined;
  }
}

/** Parses REMORA_APP_PROBES; throws one ConfigError listing every problem. */
export function parseAppProbes(envName: string, json: string | undefined): ReadonlyMap<string, AppProbe> {
  const out = new Map<string, AppProbe>();
  if (json === undefined || json.trim() === '') return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new ConfigError([`${envName}: not valid JSON: ${(err as Error).message}`]);
  }
  if (!isObj(parsed))
    throw new ConfigError([`${envName}: must be a JSON object keyed by /app-health/<container>/<kind>`]);
  const errors: string[] = [];
  for (const [path, v] of Object.entries(parsed)) {
    if (!PATH.test(path)) {
      errors.push(
        `${envName}: key ${JSON.stringify(path)} is not ${HEALTH_PATHS.appHealthPrefix}<container>/<livez|readyz|startupz>`,
      );
      continue;
    }
    const p = checkProbe(`${envName}[${JSON.stringify(path)}]`, v, errors);
    if (p !== undefined) out.set(path, Object.freeze(p));
  }
  if (errors.length > 0) throw new ConfigError(errors);
  return out;
}

function httpProbe(p: Extract<AppProbe, { kind: 'http' }>): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = {
      'user-agent': 'remora-probe/1',
      accept: '*/*',
      connection: 'close',
    };
    for (const h of p.headers ?? []) headers[h.name.toLowerCase()] = h.value;
    const opts = {
      host: p.host ?? DEFAULT_HOST,
      port: p.port,
      path: p.path,
      method: 'GET',
      headers,
      timeout: p.timeoutSeconds * 1000,
      agent: false as const,
    };
    // The kubelet does not verify the app's certificate either.
    const req =
      p.scheme === 'HTTPS' ? https().request({ ...opts, rejectUnauthorized: false }) : http.request(opts);
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 502;
      resolve({ status, detail: `app answered ${status}` });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${p.timeoutSeconds}s`)));
    req.on('error', (err) => resolve({ status: 503, detail: `app probe failed: ${err.message}` }));
    req.end();
  });
}

function tcpProbe(p: Extract<AppProbe, { kind: 'tcp' }>): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host: p.host ?? DEFAULT_HOST, port: p.port, timeout: p.timeoutSeconds * 1000 });
    s.on('connect', () => {
      s.destroy();
      resolve({ status: 200, detail: `connected to port ${p.port}` });
    });
    s.on('timeout', () => s.destroy(new Error(`no connection within ${p.timeoutSeconds}s`)));
    s.on('error', (err) => resolve({ status: 503, detail: `app probe failed: ${err.message}` }));
  });
}

/** grpc.health.v1.Health/Check over cleartext HTTP/2: SERVING (1) is healthy. */
function grpcProbe(p: Extract<AppProbe, { kind: 'grpc' }>): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.close();
      client.destroy();
      resolve(r);
    };
    const client = http2().connect(`http://${DEFAULT_HOST}:${p.port}`);
    const timer = setTimeout(
      () => done({ status: 503, detail: `no answer within ${p.timeoutSeconds}s` }),
      p.timeoutSeconds * 1000,
    );
    client.on('error', (err) => done({ status: 503, detail: `app probe failed: ${err.message}` }));
    const service = Buffer.from(p.service ?? '', 'utf8');
    // HealthCheckRequest { string service = 1; }, length-prefixed gRPC frame.
    const msg =
      service.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, service.length]), service]);
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    const req = client.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', (err) => done({ status: 503, detail: `app probe failed: ${err.message}` }));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (grpcStatus !== '0') return done({ status: 503, detail: `grpc-status ${grpcStatus ?? 'missing'}` });
      // HealthCheckResponse { ServingStatus status = 1; }: field 1 varint.
      const m = body.subarray(5);
      const status = m.length >= 2 && m[0] === 0x08 ? m[1] : 0;
      done(
        status === 1
          ? { status: 200, detail: 'SERVING' }
          : { status: 503, detail: `serving status ${String(status)}` },
      );
    });
    req.end(frame);
  });
}

export function runProbe(p: AppProbe): Promise<ProbeResult> {
  switch (p.kind) {
    case 'http':
      return httpProbe(p);
    case 'tcp':
      return tcpProbe(p);
    case 'grpc':
      return grpcProbe(p);
  }
}
