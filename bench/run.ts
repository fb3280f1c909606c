#!/usr/bin/env node
/**
 * `npm run bench`: the per-hop cost, in one run, with ratio columns (issue 11). One hop through
 * direct, Remora (supervisor + engine, explicit mode), Remora with telemetry on, nginx (its own
 * process) and http-proxy: `wrk -t1 -c32` throughput, and at a fixed 1,000 req/s
 * (`hey -q 100 -c 10`) the latency, each proxy process's CPU µs per request and PSS. The mesh
 * hop: two Remora sidecars with mTLS (and with telemetry on) against two nginx with mutual TLS
 * (../shared/bench/nginx-mesh-hop.sh's setup). With --baseline, an earlier tree's Remora paths
 * run beside this tree's. Paths alternate round by round; every process is started here and
 * stopped by PID.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, USAGE } from './args.js';
import type { BenchOptions } from './args.js';
import { measureLatency, measureThroughput, MEMORY_SAMPLE_S, warmUpJit } from './measure.js';
import type { Settings } from './measure.js';
import { plan, PortPool, portsNeeded, startPaths } from './paths.js';
import {
  cleanupOnSignals,
  freePorts,
  httpGet,
  machineBusyTicks,
  processTicks,
  Processes,
  treeTicks,
} from './procs.js';
import { compare, markdownReport, MESH_PATHS, PATH_LABELS, pathId, textTable } from './report.js';
import type { BenchReport, PathResult } from './report.js';
import { latencySvg } from './svg.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY_BIN = join(ROOT, 'proxy/dist/bin/remora-proxy.js');
const HTTP_PROXY_BIN = join(ROOT, 'bench/dist/http-proxy-server.js');
const PUBLISH_DIR = join(ROOT, 'docs/bench');
const PERF_DOC = join(ROOT, 'docs/performance.md');
const DOC_BEGIN = '<!-- bench:latest:begin (written by `npm run bench -- --publish`) -->';
const DOC_END = '<!-- bench:latest:end -->';

const FULL: Settings = {
  warmupSec: 2,
  throughputSec: 4,
  rounds: 3,
  latencySec: 6,
  latencyRounds: 2,
  latencyWarmupSec: 2,
  jitWarmupSec: 4,
  wrkThreads: 1,
  wrkConnections: 32,
  heyConcurrency: 10,
  heyRatePerWorker: 100,
  scrapeEverySec: 5,
};
const QUICK: Settings = {
  ...FULL,
  warmupSec: 0,
  throughputSec: 1,
  rounds: 1,
  latencySec: 2,
  latencyRounds: 1,
  latencyWarmupSec: 0,
  jitWarmupSec: 0,
  scrapeEverySec: 1,
};

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** A problem of this machine's setup (a tool missing): its message says it all, no stack. */
class SetupError extends Error {
  override readonly name = 'SetupError';
}

function requireTools(tools: readonly string[]): void {
  const missing = tools.filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new SetupError(
      `missing tool(s): ${missing.join(', ')}. On Debian: apt-get install -y ${missing
        .map((t) => (t === 'nginx' ? 'nginx-light' : t))
        .join(' ')}`,
    );
  }
}

function version(cmd: string, args: readonly string[]): string {
  try {
    // nginx -v writes to stderr; capture both.
    return (
      execFileSync('sh', ['-c', `${cmd} ${args.join(' ')} 2>&1`], { encoding: 'utf8' })
        .trim()
        .split('\n')[0] ?? ''
    );
  } catch {
    return 'unknown';
  }
}

/** The OTLP receiver of demo/otlp.ts (the tests' own), from its build: it decodes every export. */
interface OtlpReceiver {
  readonly url: string;
  readonly spans: unknown[];
  readonly rejected: number;
  readonly requests: number;
  close(): Promise<void>;
}

async function startReceiver(): Promise<OtlpReceiver> {
  const file = join(ROOT, 'demo/dist/otlp.js');
  if (!existsSync(file))
    throw new SetupError(`${file} is not built: npx tsc -p demo (npm run bench does it)`);
  const { startOtlpReceiver } = (await import(file)) as { startOtlpReceiver: () => Promise<OtlpReceiver> };
  return startOtlpReceiver();
}

function commitOf(dir: string): string {
  const marker = join(dir, '.bench-commit');
  if (existsSync(marker)) return readFileSync(marker, 'utf8').trim();
  const v = version('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']);
  return /^[0-9a-f]{4,40}$/.test(v) ? v : 'unknown';
}

async function main(opts: BenchOptions): Promise<void> {
  const s = opts.quick ? QUICK : FULL;
  requireTools(['nginx', 'wrk', 'hey', ...(opts.paths.includes('mesh-nginx') ? ['openssl'] : [])]);
  let baselineBin: string | undefined;
  if (opts.baseline !== undefined) {
    baselineBin = join(resolve(opts.baseline), 'proxy/dist/bin/remora-proxy.js');
    if (!existsSync(baselineBin))
      throw new SetupError(
        `--baseline=${opts.baseline}: ${baselineBin} does not exist; build the tree first (docs/performance.md, "Before and after")`,
      );
  }
  const procs = new Processes(log);
  const dir = mkdtempSync(join(tmpdir(), 'remora-bench-'));
  const receiver = await startReceiver();
  let scraper: NodeJS.Timeout | undefined;
  const cleanup = async (): Promise<void> => {
    if (scraper !== undefined) clearInterval(scraper);
    await procs.stopAll();
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const removeHandlers = cleanupOnSignals(cleanup);
  try {
    const startedAt = new Date();
    const loadavgStart = loadavg();
    const busyStart = machineBusyTicks();
    const selfStart = processTicks('self');
    const t0 = Date.now();

    let accessLogLines = 0;
    const ports = new PortPool(await freePorts(portsNeeded(opts.paths, baselineBin !== undefined)));
    const { targets, skipped, servers } = await startPaths({
      procs,
      dir,
      paths: opts.paths,
      trees: { current: PROXY_BIN, ...(baselineBin === undefined ? {} : { baseline: baselineBin }) },
      httpProxyBin: HTTP_PROXY_BIN,
      ports,
      telemetry: {
        otlpUrl: receiver.url,
        onAccessLog: (chunk) => {
          for (let i = chunk.indexOf('\n'); i >= 0; i = chunk.indexOf('\n', i + 1)) accessLogLines++;
        },
      },
      log,
    });
    if (targets.length === 0) throw new Error('no path could be measured');
    // Prometheus scrapes every 15-30 s; this scrapes more often, so its cost is not understated.
    let scrapes = 0;
    const metricsPorts = targets.flatMap((t) => t.metricsPorts);
    if (metricsPorts.length > 0)
      scraper = setInterval(() => {
        for (const port of metricsPorts)
          void httpGet(`http://127.0.0.1:${port}/metrics`).then(
            (r) => void (r.status === 200 && scrapes++),
            () => undefined,
          );
      }, s.scrapeEverySec * 1000);

    const oneHop = targets.filter((t) => !MESH_PATHS.includes(t.path));
    const throughput = await measureThroughput(procs, oneHop, s, log);
    await warmUpJit(
      procs,
      targets.filter((t) => MESH_PATHS.includes(t.path)),
      s,
      log,
    );
    const fixed = await measureLatency(procs, targets, s, log);
    if (scraper !== undefined) clearInterval(scraper);

    const paths: PathResult[] = plan(opts.paths, baselineBin !== undefined).map(({ path, tree }) => {
      const id = pathId(path, tree);
      const label = PATH_LABELS[path];
      const skip = skipped.get(id);
      if (skip !== undefined) return { id, path, tree, label, skipped: skip };
      const f = fixed.get(id)!;
      const tp = throughput.get(id);
      return {
        id,
        path,
        tree,
        label,
        ...(tp === undefined ? {} : { throughput: tp }),
        latency: f.latency,
        ...(f.cost === undefined ? {} : { cost: f.cost }),
      };
    });

    // CPU used by everything else on the machine while we measured: the bench is only
    // comparable to another run if this is near zero.
    const elapsedSec = (Date.now() - t0) / 1000;
    const ours = processTicks('self') - selfStart + servers.reduce((sum, p) => sum + treeTicks(p.pid), 0);
    const otherCores = Math.max(0, (machineBusyTicks() - busyStart - ours) / 100 / elapsedSec);
    const telemetryOn = targets.some((t) => t.metricsPorts.length > 0);
    const rate = s.heyConcurrency * s.heyRatePerWorker;

    const report: BenchReport = {
      schema: 'remora-bench/2',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      quick: opts.quick,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        kernel: release(),
        node: process.versions.node,
        nginx: version('nginx', ['-v']).replace(/^nginx version: /, ''),
        wrk: version('wrk', ['-v']),
        commit: version('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
        loadavgStart,
        loadavgEnd: loadavg(),
        otherCpuCores: Number(otherCores.toFixed(2)),
      },
      method: {
        throughput: `wrk -t${s.wrkThreads} -c${s.wrkConnections} -d${s.throughputSec}s`,
        warmupSec: s.warmupSec,
        jitWarmupSec: s.jitWarmupSec,
        rounds: s.rounds,
        latency: `hey -z ${s.latencySec}s -q ${s.heyRatePerWorker} -c ${s.heyConcurrency}`,
        latencyRounds: s.latencyRounds,
        latencyRate: rate,
        latencyResolutionMs: 0.1,
        backend:
          'nginx, its own process, 1 worker, fixed 12-byte body; the nginx proxy is a second nginx process',
        cpu: 'utime + stime of each proxy process (/proc/<pid>/stat) over the fixed-rate rounds ÷ requests',
        memory: `PSS (/proc/<pid>/smaps_rollup) of each proxy process, sampled every ${MEMORY_SAMPLE_S} s at the fixed rate; the sample with the largest sum`,
        telemetry: `access log on, 1 % trace sampling to an OTLP/HTTP receiver on loopback, /metrics scraped every ${s.scrapeEverySec} s`,
      },
      ...(opts.baseline === undefined
        ? {}
        : { baseline: { dir: resolve(opts.baseline), commit: commitOf(opts.baseline) } }),
      ...(telemetryOn
        ? {
            telemetry: {
              spansReceived: receiver.spans.length,
              exportRequests: receiver.requests,
              rejectedExports: receiver.rejected,
              scrapes,
              accessLogLines,
            },
          }
        : {}),
      paths,
      comparisons: compare(paths),
    };
    await cleanup();
    await writeOutputs(report, opts);
  } finally {
    await cleanup();
    removeHandlers();
  }
}

async function writeOutputs(report: BenchReport, opts: BenchOptions, fresh = true): Promise<void> {
  const outDir = opts.outDir ?? join(ROOT, 'bench/results');
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const svg = latencySvg(report);
  const md = markdownReport(report);
  if (fresh) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, `${stamp}.json`), json);
    writeFileSync(join(outDir, `${stamp}.svg`), svg);
  }

  console.log(`\n${textTable(report)}\n`);
  const m = report.machine;
  console.log(
    `\nmachine: ${String(m.cpus)} cores, load ${fmtList(m.loadavgStart)} → ${fmtList(m.loadavgEnd)}, ` +
      `other processes used ~${String(m.otherCpuCores)} cores meanwhile`,
  );
  if (report.quick)
    console.log('--quick: durations too short to quote; use a full run for docs/performance.md');
  if (fresh) console.log(`\nwrote ${join(outDir, `${stamp}.json`)} and .svg`);
  console.log(`\nmarkdown for docs/performance.md:\n\n${md}\n`);

  if (opts.publish) {
    mkdirSync(PUBLISH_DIR, { recursive: true });
    writeFileSync(join(PUBLISH_DIR, 'latest.json'), await prettyJson(json, join(PUBLISH_DIR, 'latest.json')));
    writeFileSync(join(PUBLISH_DIR, 'latency.svg'), svg);
    console.log(`published docs/bench/latest.json and docs/bench/latency.svg`);
    if (existsSync(PERF_DOC)) {
      const doc = readFileSync(PERF_DOC, 'utf8');
      const a = doc.indexOf(DOC_BEGIN);
      const b = doc.indexOf(DOC_END);
      if (a >= 0 && b > a) {
        writeFileSync(PERF_DOC, `${doc.slice(0, a + DOC_BEGIN.length)}\n\n${md}\n\n${doc.slice(b)}`);
        console.log('updated the table in docs/performance.md');
      } else
        console.log(`docs/performance.md has no ${DOC_BEGIN} ... ${DOC_END} block: paste the markdown above`);
    }
  }
}

/**
 * The committed copy is formatted the way `npm run lint` (prettier --check) expects, so a
 * publish never leaves the tree failing lint; without prettier it is written as is.
 */
async function prettyJson(json: string, path: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    return await prettier.format(json, { ...(await prettier.resolveConfig(path)), parser: 'json' });
  } catch {
    return json;
  }
}

async function redraw(file: string, opts: BenchOptions): Promise<void> {
  const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  if (report.schema !== 'remora-bench/2')
    throw new Error(
      `schema "${String(report.schema)}" is not remora-bench/2 (an older run: redraw it with that commit's bench)`,
    );
  // The ratios are a pure function of the paths: recomputed, so a redraw shows this bench's columns.
  await writeOutputs({ ...report, comparisons: compare(report.paths) }, opts, false);
}

function fmtList(v: unknown): string {
  return Array.isArray(v) ? v.map((x) => Number(x).toFixed(2)).join('/') : '–';
}

let opts: BenchOptions;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
} else if (opts.from !== undefined) {
  const from = opts.from;
  redraw(from, opts).catch((e: unknown) => {
    process.stderr.write(`bench --from=${from}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
} else {
  main(opts).catch((e: unknown) => {
    process.stderr.write(
      `bench failed: ${e instanceof SetupError ? e.message : ((e as Error).stack ?? String(e))}\n`,
    );
    process.exitCode = 1;
  });
}
