/**
 * Helpers of the circuit-breaking and outlier tests: upstream servers on loopback that count
 * their accepted sockets and requests and can hold answers, and an engine whose outbound
 * listener reaches a service of static discovery (REMORA_OUTBOUND_TARGET = the service, a
 * discovery file maps it to plain endpoints) through a Mesh under a hand-fed policy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { staticDiscovery } from '../../../proxy/src/discovery/static.js';
import { Engine } from '../../../proxy/src/engine.js';
import { createLogger } from '../../../proxy/src/log.js';
import { ProxyMetrics } from '../../../proxy/src/metrics/proxy.js';
import { compilePolicy } from '../../../proxy/src/policy/compile.js';
import { parsePolicyDocument } from '../../../proxy/src/policy/document.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { routeLayer } from '../../../proxy/src/policy/route.js';
import { timeoutLayer } from '../../../proxy/src/policy/timeout.js';
import type { CompiledPolicy, PolicySource } from '../../../proxy/src/policy/types.js';
import { Mesh } from '../../../proxy/src/tunnel/mesh.js';

export interface Upstream {
  readonly port: number;
  readonly key: string;
  /** sockets accepted so far */
  accepted: number;
  /** Date.now() of every request received */
  readonly hits: number[];
  /** answer status (200 unless a test makes it fail) */
  status: number;
  /** while true, requests wait for `release()` */
  holding: boolean;
  /** requests waiting now */
  readonly held: number;
  release(): void;
  close(): Promise<void>;
}

export async function startUpstream(status = 200): Promise<Upstream> {
  const waiting: http.ServerResponse[] = [];
  const answer = (res: http.ServerResponse, code: number): void => {
    res.writeHead(code, { 'content-type': 'text/plain' });
    res.end(`${code}\n`);
  };
  const server = http.createServer((req, res) => {
    u.hits.push(Date.now());
    req.resume();
    req.on('end', () => {
      if (u.holding) waiting.push(res);
      else answer(res, u.status);
    });
  });
  server.on('connection', () => (u.accepted += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const u: Upstream = {
    port,
    key: `127.0.0.1:${port}`,
    accepted: 0,
    hits: [],
    status,
    holding: false,
    get held() {
      return waiting.length;
    },
    release() {
      u.holding = false;
      for (const res of waiting.splice(0)) answer(res, u.status);
    },
    async close() {
      u.release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return u;
}

/** A loopback port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A PolicySource the test swaps by hand (the policy holder's role). */
export class TestPolicy implements PolicySource {
  current: CompiledPolicy | undefined;
  constructor(yaml?: string) {
    this.current = yaml === undefined ? undefined : TestPolicy.compile(yaml);
  }
  static compile(yaml: string, version = 'test'): CompiledPolicy {
    return compilePolicy(parsePolicyDocument(yaml), { namespace: undefined, workload: undefined }, version);
  }
  set(yaml: string): void {
    this.current = TestPolicy.compile(yaml, `test-${Date.now()}`);
  }
}

/** A one-policy document with one outbound section for `destination`. */
export function outboundPolicy(destination: string, section: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'remora.dev/v1',
    kind: 'PolicySet',
    policies: [{ name: 'breaker-test', outbound: [{ destinations: [destination], ...section }] }],
  });
}

export interface MeshProxy {
  readonly engine: Engine;
  readonly mesh: Mesh;
  readonly policy: TestPolicy;
  readonly logs: Record<string, unknown>[];
  readonly outboundPort: number;
  readonly metricsPort: number;
  close(): Promise<void>;
}

/**
 * An engine whose outbound listener goes to `service`, which discovery maps to `endpoints`.
 * `routes`: the policy's routes (timeouts, retries) apply too, in outbound layers over the same
 * policy (`minRetriesPerSecond`: the retry budget's floor, default 10).
 */
export async function startMeshProxy(
  service: string,
  endpoints: readonly number[],
  policy: TestPolicy,
  o: { routes?: boolean; minRetriesPerSecond?: number; logLevel?: 'info' | 'debug' } = {},
): Promise<MeshProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-breaker-'));
  const file = join(dir, 'discovery.json');
  writeFileSync(
    file,
    JSON.stringify({
      services: { [service]: { endpoints: endpoints.map((port) => ({ ip: '127.0.0.1', port })) } },
    }),
  );
  const config = parseConfig({
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.tunnelPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.logLevel]: o.logLevel ?? 'info',
    [ENV.outboundTarget]: service,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const metrics = new ProxyMetrics();
  const mesh = new Mesh({
    mtlsMode: 'permissive',
    identity: undefined,
    discovery: staticDiscovery(file, log),
    log,
    registry: metrics.registry,
  });
  mesh.usePolicy(policy);
  const pm = PolicyMetrics.of(metrics.registry);
  const base = { policy, direction: 'outbound' as const, metrics: pm, log };
  const layers =
    o.routes === true
      ? {
          outbound: [routeLayer({ ...base, minRetriesPerSecond: o.minRetriesPerSecond }), timeoutLayer(base)],
        }
      : undefined;
  const engine = new Engine({ config, log, metrics, mesh, layers });
  await engine.start();
  const port = (n: 'outbound' | 'metrics'): number => {
    const a = engine.addresses()[n];
    if (a === undefined) throw new Error(`no ${n} listener`);
    return a.port;
  };
  return {
    engine,
    mesh,
    policy,
    logs,
    outboundPort: port('outbound'),
    metricsPort: port('metrics'),
    async close() {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  readonly status: number;
  readonly code: string | undefined;
}

/** One GET on its own connection (so concurrent calls are concurrent upstream requests too). */
export function get(port: number, path = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => {
        const c = res.headers['x-remora-error'];
        resolve({ status: res.statusCode ?? 0, code: typeof c === 'string' ? c : undefined });
      });
    });
    req.on('error', reject);
  });
}

/** Log lines with this `event`. */
export function events(logs: readonly Record<string, unknown>[], event: string): Record<string, unknown>[] {
  return logs.filter((l) => l.event === event);
}
