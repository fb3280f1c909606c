/**
 * A/B/C comparisons of remora-proxy configurations (tracing levels, policy layers): one proxy per
 * variant in explicit mode on loopback, inbound → nginx, wrk rounds alternating between the
 * variants so that drift on a shared machine hits them alike; the median of the rounds is
 * reported with the proxy's CPU time per request, which a busy machine disturbs least.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV } from '@remora/proxy/contract';
import { BACKEND_BODY, renderNginxConf } from './nginx.js';
import { Processes, cleanupOnSignals, freePorts, httpGet, treeTicks, waitForHttp } from './procs.js';
import type { Started } from './procs.js';
import { median, parseWrk } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY_BIN = join(ROOT, 'proxy/dist/bin/remora-proxy.js');
/** Microseconds per clock tick of /proc/<pid>/stat (USER_HZ is 100 on Linux). */
const TICK_US = 10_000;

export interface Variant {
  readonly name: string;
  /** extra proxy env (on top of explicit mode, access log off, log level warn) */
  readonly env: Record<string, string>;
}

export interface RunningVariant {
  readonly variant: Variant;
  readonly proc: Started;
  readonly inbound: number;
  readonly metrics: number;
  readonly rps: number[];
  readonly p50: number[];
  readonly p99: number[];
  readonly cpuUs: number[];
}

export interface CompareOptions {
  readonly what: string;
  readonly variants: readonly Variant[];
  readonly rounds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  /** request path sent by wrk */
  readonly path?: string;
  /** extra table columns, read after the rounds */
  readonly columns?: {
    readonly header: readonly string[];
    readonly values: (t: RunningVariant) => Promise<readonly string[]>;
  };
  /** what the table's caption adds */
  readonly note?: string;
}

export const log = (msg: string): void => void process.stderr.write(`${msg}\n`);

/** Runs the comparison and returns a Markdown table with its caption. */
export async function compareVariants(o: CompareOptions): Promise<string> {
  const procs = new Processes(log);
  const dir = mkdtempSync(join(tmpdir(), 'remora-bench-variants-'));
  const cleanup = async (): Promise<void> => {
    await procs.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
  const removeHandlers = cleanupOnSignals(cleanup);
  const path = o.path ?? '/';
  try {
    const [backendPort, nginxPort] = await freePorts(2);
    const backend = `127.0.0.1:${backendPort}`;
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, renderNginxConf({ dir, backendPort: backendPort!, proxyPort: nginxPort! }));
    const nginx = procs.start('nginx', 'nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf]);
    await waitForHttp(`http://${backend}/`, nginx);

    const running: RunningVariant[] = [];
    for (const v of o.variants) {
      const [inPort, outPort, healthPort, metricsPort, adminPort] = await freePorts(5);
      const proc = procs.start(`remora-proxy (${o.what} ${v.name})`, process.execPath, [PROXY_BIN], {
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
          [ENV.traceSampling]: '0',
          [ENV.logLevel]: 'warn',
          ...v.env,
        },
      });
      await waitForHttp(`http://127.0.0.1:${healthPort}/healthz/ready`, proc);
      const r = await httpGet(`http://127.0.0.1:${inPort}${path}`);
      if (r.status !== 200 || r.body !== BACKEND_BODY)
        throw new Error(`${o.what} ${v.name}: answered ${r.status} ${r.body.slice(0, 80)}`);
      running.push({
        variant: v,
        proc,
        inbound: inPort!,
        metrics: metricsPort!,
        rps: [],
        p50: [],
        p99: [],
        cpuUs: [],
      });
    }

    const wrk = async (url: string, sec: number) => {
      const r = await procs.run('wrk', 'wrk', ['-t1', `-c${o.connections}`, `-d${sec}s`, '--latency', url]);
      if (r.code !== 0) throw new Error(`wrk exited ${String(r.code)}: ${r.stderr}`);
      return parseWrk(r.stdout);
    };
    for (const t of running) {
      log(`warm-up ${o.what} ${t.variant.name}`);
      await wrk(`http://127.0.0.1:${t.inbound}${path}`, o.warmupSeconds);
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const t of running) {
        const ticks0 = treeTicks(t.proc.pid);
        const w = await wrk(`http://127.0.0.1:${t.inbound}${path}`, o.seconds);
        t.cpuUs.push(((treeTicks(t.proc.pid) - ticks0) * TICK_US) / w.requests);
        if (w.errors > 0) throw new Error(`${o.what} ${t.variant.name}: ${w.errors} errors`);
        t.rps.push(w.requestsPerSec);
        t.p50.push(w.latencyMs.p50);
        t.p99.push(w.latencyMs.p99);
        log(
          `round ${round + 1} ${o.what} ${t.variant.name}: ${w.requestsPerSec.toFixed(0)} req/s, p99 ${w.latencyMs.p99.toFixed(2)} ms, ${(t.cpuUs.at(-1) ?? 0).toFixed(0)} µs CPU/req`,
        );
      }
    }
    const base = median(running[0]!.rps);
    const extra = o.columns?.header ?? [];
    const rows = [
      `| ${o.what} | req/s (median of ${o.rounds}) | vs ${running[0]!.variant.name} | p50 ms | p99 ms | proxy CPU µs/req |${extra.map((h) => ` ${h} |`).join('')}`,
      `|---|---|---|---|---|---|${extra.map(() => '---|').join('')}`,
    ];
    for (const t of running) {
      const rps = median(t.rps);
      const more = o.columns ? await o.columns.values(t) : [];
      rows.push(
        `| ${t.variant.name} | ${rps.toFixed(0)} | ${(((rps - base) / base) * 100).toFixed(1)} % | ${median(t.p50).toFixed(2)} | ${median(t.p99).toFixed(2)} | ${median(t.cpuUs).toFixed(0)} |${more.map((v) => ` ${v} |`).join('')}`,
      );
    }
    return `remora-proxy inbound → nginx on loopback, wrk -t1 -c${o.connections} -d${o.seconds}s ${path}, ${o.rounds} alternating round(s)${o.note ? `; ${o.note}` : ''}\n\n${rows.join('\n')}\n`;
  } finally {
    removeHandlers();
    await cleanup();
  }
}

/** Sum of a metric's samples on a proxy's /metrics. */
export async function metric(port: number, name: string): Promise<number> {
  const text = (await httpGet(`http://127.0.0.1:${port}/metrics`)).body;
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(' ').pop());
  return sum;
}
