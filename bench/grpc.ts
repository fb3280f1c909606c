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
 * clock ticks of each proxy's process tree (supervisor + engine) over the measured run, per
 * proxy. The paths ALTERNATE (direct, hop, mesh, direct, hop, mesh, ...) for `--rounds`
 * rounds, because this shared machine's speed swings between minutes; the report gives every
 * round, the medians, and the load average at the start and the end.
 *
 * Run: npm run build && tsc -p bench && node bench/dist/grpc.js [--seconds=10] [--rate=500]
 *        [--rounds=3] [--only=mesh] [--log-level=debug --log-dir=/tmp/x]
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
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
const rounds = arg('rounds', 3);
/** `--only=mesh` (or hop, direct; comma-separated): run only those paths (direct stays the reference) */
const only = /--only=([a-z,]+)/.exec(process.argv.join(' '))?.[1]?.split(',');
const TICKS_PER_SECOND = 100;
/** `--log-level=debug` for both proxies (default warn), `--log-dir=DIR` keeps their stdout there */
const logLevel = /--log-level=([a-z]+)/.exec(process.argv.join(' '))?.[1];
const logDir = /--log-dir=(\S+)/.exec(process.argv.join(' '))?.[1];

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

const startProxy = (name: string, p: ProxyPorts, env: Record<string, string>): Promise<Started> => {
  const log = logDir === undefined ? undefined : createWriteStream(join(logDir, `${name}.log`));
  return startMeshProxy(
    procs,
    PROXY,
    dir,
    name,
    p,
    {
      ...env,
      ...(logLevel === undefined ? {} : { [ENV.logLevel]: logLevel }),
      // with a log directory, the access log too (which call ended how, on each proxy)
      ...(logDir === undefined ? {} : { [ENV.accessLog]: 'on' }),
    },
    log === undefined ? undefined : (chunk) => log.write(chunk),
  );
};

interface Run {
  calls: number;
  callsPerSecond: number;
  errors: number;
  /** the failed calls by gRPC status code and message */
  errorCodes: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  /** µs of proxy CPU (all proxy processes) per call; 0 for direct */
  proxyCpuUsPerCall: number;
  /** the same, per proxy (process tree), in the order given: [] for direct */
  cpuUsPerCallByProxy: number[];
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
  const errorCodes: Record<string, number> = {};
  const ticks0 = proxies.map((p) => treeTicks(p.pid));
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
          if (e !== null) {
            errors++;
            const key = `${e.code} ${e.details}`.slice(0, 120);
            errorCodes[key] = (errorCodes[key] ?? 0) + 1;
          } else lat.push(performance.now() - t0);
          if (++done === total) resolve();
        });
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  const byProxy = proxies.map((p, i) => treeTicks(p.pid) - (ticks0[i] ?? 0));
  const ticks = byProxy.reduce((n, t) => n + t, 0);
  const usPerCall = (t: number): number => Math.round(((t / TICKS_PER_SECOND) * 1e6) / total);
  c.close();
  lat.sort((x, y) => x - y);
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    calls: total,
    callsPerSecond: Math.round(total / elapsed),
    errors,
    errorCodes,
    p50Ms: round(percentile(lat, 50)),
    p99Ms: round(percentile(lat, 99)),
    proxyCpuUsPerCall: usPerCall(ticks),
    cpuUsPerCallByProxy: byProxy.map(usPerCall),
  };
}

const ms = (v: number): number => Math.round(v * 1000) / 1000;
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const load1 = (): number[] => loadavg().map((v) => Math.round(v * 100) / 100);

/** The medians over the rounds of one path's runs. */
function summary(runs: readonly Run[]): Record<string, number | number[]> {
  const proxies = runs[0]?.cpuUsPerCallByProxy.length ?? 0;
  return {
    callsPerSecond: median(runs.map((r) => r.callsPerSecond)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    p50Ms: ms(median(runs.map((r) => r.p50Ms))),
    p99Ms: ms(median(runs.map((r) => r.p99Ms))),
    proxyCpuUsPerCall: median(runs.map((r) => r.proxyCpuUsPerCall)),
    cpuUsPerCallByProxy: Array.from({ length: proxies }, (_, i) =>
      median(runs.map((r) => r.cpuUsPerCallByProxy[i] ?? 0)),
    ),
  };
}

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
  const loadAtStart = load1();
  const paths = {
    direct: { port: serverPort, proxies: [] as Started[] },
    hop: { port: b.inbound, proxies: [proxyB] },
    // CPU per proxy in this order: A (outbound, client side), B (tunnel, server side)
    mesh: { port: a.outbound, proxies: [proxyA, proxyB] },
  };
  const chosen = (Object.entries(paths) as [keyof typeof paths, (typeof paths)['direct']][]).filter(
    ([name]) => name === 'direct' || only === undefined || only.includes(name),
  );
  for (const [, p] of chosen) await load(p.port, p.proxies, 2); // warm-up
  const runs: Record<keyof typeof paths, Run[]> = { direct: [], hop: [], mesh: [] };
  const added: { hop: number[]; mesh: number[] }[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [name, p] of chosen) runs[name].push(await load(p.port, p.proxies));
    const d = runs.direct[r] as Run;
    const h = runs.hop[r] ?? d;
    const m = runs.mesh[r] ?? d;
    added.push({ hop: [h.p50Ms - d.p50Ms, h.p99Ms - d.p99Ms], mesh: [m.p50Ms - d.p50Ms, m.p99Ms - d.p99Ms] });
    process.stderr.write(
      `# round ${r + 1}/${rounds}: p50 direct ${d.p50Ms} hop ${h.p50Ms} mesh ${m.p50Ms} ms; load ${load1().join(' ')}\n`,
    );
  }
  const report = {
    when: new Date().toISOString(),
    node: process.version,
    seconds,
    rate,
    rounds,
    loadAverage: { start: loadAtStart, end: load1() },
    direct: summary(runs.direct),
    hop: summary(runs.hop),
    mesh: summary(runs.mesh),
    // medians over the rounds of (path − direct) within the same round
    addedP50Ms: {
      hop: ms(median(added.map((x) => x.hop[0] ?? 0))),
      mesh: ms(median(added.map((x) => x.mesh[0] ?? 0))),
    },
    addedP99Ms: {
      hop: ms(median(added.map((x) => x.hop[1] ?? 0))),
      mesh: ms(median(added.map((x) => x.mesh[1] ?? 0))),
    },
    perRound: runs,
    // what the proxies logged at warn and above (their last output), by event
    proxyEvents: Object.fromEntries(
      [proxyA, proxyB].map((p) => {
        const by: Record<string, number> = {};
        for (const m of p.tail().matchAll(/"event":"([a-z0-9_]+)"/g))
          by[m[1] as string] = (by[m[1] as string] ?? 0) + 1;
        return [p.name, by];
      }),
    ),
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
