/**
 * gRPC cost (issue 12): unary calls at a fixed rate from a grpc-js load loop (one channel, so
 * one HTTP/2 connection), p50/p99 and the proxies' CPU per call, for three paths:
 *
 *   direct: client → grpc-js server
 *   hop:    client → proxy B inbound (HTTP/2 stage) → server
 *   mesh:   client → proxy A outbound → (discovery: meshed) → HTTP/2 inside the mTLS tunnel →
 *           proxy B :tunnel → server
 *
 * Everything on loopback, every process started here and stopped by PID. CPU per call is the
 * clock ticks of the proxies' process trees (supervisor + engine) over the measured run.
 *
 * Run: npm run build && tsc -p bench && node bench/dist/grpc.js [--seconds=10] [--rate=500]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { ENV } from '@remora/proxy/contract';
import { Processes, cleanupOnSignals, freePorts, treeTicks } from './procs.js';
import type { Started } from './procs.js';
import { startMeshCa, startMeshProxy, writeDiscovery } from './mesh-proxy.js';
import type { ProxyPorts } from './mesh-proxy.js';
import { percentile } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY = join(ROOT, 'proxy/dist/bin/remora-proxy.js');
const SERVICE = '127.0.0.251:50051';

const arg = (name: string, d: number): number =>
  Number(new RegExp(`--${name}=(\\d+)`).exec(process.argv.join(' '))?.[1] ?? d);
const seconds = arg('seconds', 10);
const rate = arg('rate', 500);
const TICKS_PER_SECOND = 100;

const procs = new Processes((m) => process.stderr.write(`# ${m}\n`));
const dir = mkdtempSync(join(tmpdir(), 'remora-bench-grpc-'));
const stopSignals = cleanupOnSignals(async () => {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const bytes = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};
const SERVICE_DEF: grpc.ServiceDefinition = {
  unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, ...bytes },
};
const Client = grpc.makeGenericClientConstructor(SERVICE_DEF, 'Echo');
type Unary = (req: Buffer, cb: (err: grpc.ServiceError | null) => void) => void;

/** The server runs in its own process, so only the client shares this one. */
const SERVER_JS = `
const grpc = require('@grpc/grpc-js');
const b = { requestSerialize: (x) => x, requestDeserialize: (x) => x, responseSerialize: (x) => x, responseDeserialize: (x) => x };
const s = new grpc.Server();
s.addService({ unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, ...b } },
  { unary: (call, cb) => cb(null, call.request) });
s.bindAsync('127.0.0.1:' + process.argv[1], grpc.ServerCredentials.createInsecure(), () => {});
`;

const startProxy = (name: string, p: ProxyPorts, env: Record<string, string>): Promise<Started> =>
  startMeshProxy(procs, PROXY, dir, name, p, env);

interface Run {
  calls: number;
  callsPerSecond: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  /** µs of proxy CPU (all proxy processes) per call; 0 for direct */
  proxyCpuUsPerCall: number;
}

/** `rate` calls/s for `seconds` on one channel (one HTTP/2 connection), open loop. */
async function load(port: number, proxies: readonly Started[], secs = seconds): Promise<Run> {
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
    unary: Unary;
    close(): void;
  };
  const msg = Buffer.alloc(64, 1);
  // Until the path works (certificates, first connection).
  for (let ok = false, end = Date.now() + 20_000; !ok && Date.now() < end;) {
    ok = await new Promise<boolean>((r) => c.unary(msg, (e) => r(e === null)));
    if (!ok) await new Promise((r) => setTimeout(r, 200));
  }
  const lat: number[] = [];
  let errors = 0;
  const ticks0 = proxies.reduce((n, p) => n + treeTicks(p.pid), 0);
  const total = rate * secs;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let done = 0;
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
      for (; sent < due; sent++) {
        const t0 = performance.now();
        c.unary(msg, (e) => {
          if (e !== null) errors++;
          else lat.push(performance.now() - t0);
          if (++done === total) resolve();
        });
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  const ticks = proxies.reduce((n, p) => n + treeTicks(p.pid), 0) - ticks0;
  c.close();
  lat.sort((x, y) => x - y);
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    calls: total,
    callsPerSecond: Math.round(total / elapsed),
    errors,
    p50Ms: round(percentile(lat, 50)),
    p99Ms: round(percentile(lat, 99)),
    proxyCpuUsPerCall: Math.round(((ticks / TICKS_PER_SECOND) * 1e6) / total),
  };
}

const ms = (v: number): number => Math.round(v * 1000) / 1000;

async function main(): Promise<void> {
  const all = await freePorts(15);
  const [serverPort, caPort, webhookPort] = all as [number, number, number];
  const rest = all.slice(3);
  const ports = (i: number): ProxyPorts => {
    const [inbound, outbound, tunnel, health, metrics, admin] = rest.slice(i * 6, i * 6 + 6) as number[];
    return {
      inbound: inbound!,
      outbound: outbound!,
      tunnel: tunnel!,
      health: health!,
      metrics: metrics!,
      admin: admin!,
    };
  };
  const a = ports(0);
  const b = ports(1);
  procs.start('grpc-server', process.execPath, ['-e', SERVER_JS, String(serverPort)], {
    env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') },
  });
  const ca = await startMeshCa(procs, dir, caPort, webhookPort);
  writeDiscovery(join(dir, 'discovery.json'), serverPort, b.tunnel, SERVICE);
  await new Promise((r) => setTimeout(r, 500)); // the server binds
  const proxyB = await startProxy('proxy-b', b, {
    ...ca.env('b'),
    [ENV.inboundTarget]: `127.0.0.1:${serverPort}`,
  });
  const proxyA = await startProxy('proxy-a', a, {
    ...ca.env('a'),
    [ENV.outboundTarget]: SERVICE,
    [ENV.discoveryFile]: join(dir, 'discovery.json'),
  });
  await load(serverPort, [], 2); // warm-up
  const direct = await load(serverPort, []);
  await load(b.inbound, [proxyB], 2);
  const hop = await load(b.inbound, [proxyB]);
  await load(a.outbound, [proxyA, proxyB], 2);
  const meshHop = await load(a.outbound, [proxyA, proxyB]);
  const report = {
    when: new Date().toISOString(),
    node: process.version,
    seconds,
    rate,
    direct,
    hop,
    mesh: meshHop,
    addedP50Ms: { hop: ms(hop.p50Ms - direct.p50Ms), mesh: ms(meshHop.p50Ms - direct.p50Ms) },
    addedP99Ms: { hop: ms(hop.p99Ms - direct.p99Ms), mesh: ms(meshHop.p99Ms - direct.p99Ms) },
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

try {
  await main();
} finally {
  stopSignals();
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
