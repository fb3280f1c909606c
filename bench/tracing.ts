/**
 * What tracing costs: throughput and p99 through remora-proxy (inbound, explicit mode on
 * loopback, nginx backend) with tracing off, at 1 % and at 100 % sampling, exporting to a local
 * OTLP/HTTP receiver that accepts and drops. Rounds alternate between the variants so that
 * drift on a shared machine hits all three alike; the median of the rounds is reported.
 *
 *   npm run build && npx tsc -p bench && node bench/dist/tracing.js [--quick]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV, METRICS, OTEL_ENV } from '@remora/proxy/contract';
import { BACKEND_BODY, renderNginxConf } from './nginx.js';
import { Processes, cleanupOnSignals, freePorts, httpGet, treeTicks, waitForHttp } from './procs.js';
import type { Started } from './procs.js';
import { median, parseWrk } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY_BIN = join(ROOT, 'proxy/dist/bin/remora-proxy.js');

interface Variant {
  readonly name: 'off' | '1%' | '100%';
  /** Extra proxy env; tracing is off without an endpoint. */
  readonly env: (otlpUrl: string) => Record<string, string>;
}

const VARIANTS: readonly Variant[] = [
  { name: 'off', env: () => ({}) },
  { name: '1%', env: (url) => ({ [OTEL_ENV.endpoint]: url, [ENV.traceSampling]: '0.01' }) },
  { name: '100%', env: (url) => ({ [OTEL_ENV.endpoint]: url, [ENV.traceSampling]: '1' }) },
];

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 3;
const SECONDS = quick ? 3 : 10;
const CONNECTIONS = 16;

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);

/** An OTLP/HTTP endpoint that accepts every export and drops it, counting the bytes. */
async function startSink(): Promise<{ url: string; exports: () => number; close: () => Promise<void> }> {
  let exports = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      exports++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports: () => exports,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function metric(port: number, name: string): Promise<number> {
  const text = (await httpGet(`http://127.0.0.1:${port}/metrics`)).body;
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(' ').pop());
  return sum;
}

interface Running {
  readonly variant: Variant;
  readonly proc: Started;
  readonly inbound: number;
  readonly metrics: number;
  rps: number[];
  p99: number[];
  p50: number[];
  /** CPU time of the proxy (supervisor + engine) per request, µs: robust to a busy machine. */
  cpuUs: number[];
}

/** Microseconds per clock tick of /proc/<pid>/stat (USER_HZ is 100 on Linux). */
const TICK_US = 10_000;

async function main(): Promise<void> {
  const procs = new Processes(log);
  const dir = mkdtempSync(join(tmpdir(), 'remora-bench-tracing-'));
  const sink = await startSink();
  const cleanup = async (): Promise<void> => {
    await procs.stopAll();
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const removeHandlers = cleanupOnSignals(cleanup);
  try {
    const [backendPort, nginxPort] = await freePorts(2);
    const backend = `127.0.0.1:${backendPort}`;
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, renderNginxConf({ dir, backendPort: backendPort!, proxyPort: nginxPort! }));
    const nginx = procs.start('nginx', 'nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf]);
    await waitForHttp(`http://${backend}/`, nginx);

    const running: Running[] = [];
    for (const v of VARIANTS) {
      const [inPort, outPort, healthPort, metricsPort, adminPort] = await freePorts(5);
      const proc = procs.start(`remora-proxy (tracing ${v.name})`, process.execPath, [PROXY_BIN], {
        env: {
          PATH: process.env.PATH ?? '',
          [ENV.inboundPort]: String(inPort),
          [ENV.outboundPort]: String(outPort),
          [ENV.healthPort]: String(healthPort),
          [ENV.metricsPort]: String(metricsPort),
          [ENV.adminPort]: String(adminPort),
          [ENV.bindHost]: '127.0.0.1',
          [ENV.inboundTarget]: backend,
          [ENV.accessLog]: 'off',
          [ENV.logLevel]: 'warn',
          [OTEL_ENV.bspScheduleDelay]: '1000',
          ...v.env(sink.url),
        },
      });
      await waitForHttp(`http://127.0.0.1:${healthPort}/healthz/ready`, proc);
      const r = await httpGet(`http://127.0.0.1:${inPort}/`);
      if (r.status !== 200 || r.body !== BACKEND_BODY)
        throw new Error(`tracing ${v.name}: answered ${r.status}`);
      running.push({
        variant: v,
        proc,
        inbound: inPort!,
        metrics: metricsPort!,
        rps: [],
        p99: [],
        p50: [],
        cpuUs: [],
      });
    }

    const wrk = async (url: string, sec: number) => {
      const r = await procs.run('wrk', 'wrk', ['-t1', `-c${CONNECTIONS}`, `-d${sec}s`, '--latency', url]);
      if (r.code !== 0) throw new Error(`wrk exited ${String(r.code)}: ${r.stderr}`);
      return parseWrk(r.stdout);
    };
    for (const t of running) {
      log(`warm-up tracing ${t.variant.name}`);
      await wrk(`http://127.0.0.1:${t.inbound}/`, quick ? 1 : 3);
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of running) {
        const ticks0 = treeTicks(t.proc.pid);
        const w = await wrk(`http://127.0.0.1:${t.inbound}/`, SECONDS);
        t.cpuUs.push(((treeTicks(t.proc.pid) - ticks0) * TICK_US) / w.requests);
        if (w.errors > 0) throw new Error(`tracing ${t.variant.name}: ${w.errors} errors`);
        t.rps.push(w.requestsPerSec);
        t.p50.push(w.latencyMs.p50);
        t.p99.push(w.latencyMs.p99);
        log(
          `round ${round + 1} tracing ${t.variant.name}: ${w.requestsPerSec.toFixed(0)} req/s, p99 ${w.latencyMs.p99.toFixed(2)} ms, ${(t.cpuUs.at(-1) ?? 0).toFixed(0)} µs CPU/req`,
        );
      }
    }
    // Let the last batches go out before reading the span counters.
    await new Promise((r) => setTimeout(r, 2500));
    const base = median(running[0]!.rps);
    const rows: string[] = [];
    rows.push(
      `| tracing | req/s (median of ${ROUNDS}) | vs off | p50 ms | p99 ms | proxy CPU µs/req | spans exported | spans dropped |`,
    );
    rows.push('|---|---|---|---|---|---|---|---|');
    for (const t of running) {
      const rps = median(t.rps);
      const exported = await metric(t.metrics, METRICS.traceSpansExported);
      const dropped = await metric(t.metrics, METRICS.traceSpansDropped);
      rows.push(
        `| ${t.variant.name} | ${rps.toFixed(0)} | ${(((rps - base) / base) * 100).toFixed(1)} % | ${median(t.p50).toFixed(2)} | ${median(t.p99).toFixed(2)} | ${median(t.cpuUs).toFixed(0)} | ${exported} | ${dropped} |`,
      );
    }
    process.stdout.write(
      `remora-proxy inbound → nginx on loopback, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} alternating round(s); OTLP receiver accepts and drops (${sink.exports()} exports)\n\n${rows.join('\n')}\n`,
    );
  } finally {
    removeHandlers();
    await cleanup();
  }
}

main().catch((err: unknown) => {
  log(`bench/tracing: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
