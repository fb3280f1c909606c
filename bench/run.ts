#!/usr/bin/env node
/**
 * `npm run bench`: HTTP/1.1 keep-alive throughput and latency at a fixed 1000 req/s through
 * four paths in one run: direct, remora-proxy (inbound, explicit mode), nginx as a proxy and
 * http-proxy. The setup is the project's reference one (nginx.ts): nginx with one worker is
 * both the backend (a fixed 12-byte body) and the nginx proxy; throughput is `wrk -t1 -c32`,
 * the paths alternating round by round after a warm-up, medians compared; latency is
 * `hey -q 100 -c 10` (1000 req/s). Every process is started here and stopped by PID.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV } from '@remora/proxy/contract';
import { parseArgs, USAGE } from './args.js';
import type { BenchOptions } from './args.js';
import { BACKEND_BODY, renderNginxConf } from './nginx.js';
import {
  cleanupOnSignals,
  freePorts,
  httpGet,
  machineBusyTicks,
  processTicks,
  Processes,
  treeMemory,
  treeTicks,
  waitForHttp,
} from './procs.js';
import type { Started } from './procs.js';
import { checkTargets, compare, markdownReport, PATH_LABELS, PERCENTILE_KEYS, textTable } from './report.js';
import type { BenchReport, Latency, Memory, PathName, PathResult, Throughput } from './report.js';
import { latencySvg } from './svg.js';
import { mean, median, parseHeyCsv, parseWrk, percentile } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROXY_BIN = join(ROOT, 'proxy/dist/bin/remora-proxy.js');
const HTTP_PROXY_BIN = join(ROOT, 'bench/dist/http-proxy-server.js');
const PUBLISH_DIR = join(ROOT, 'docs/bench');
const PERF_DOC = join(ROOT, 'docs/performance.md');
const DOC_BEGIN = '<!-- bench:latest:begin (written by `npm run bench -- --publish`) -->';
const DOC_END = '<!-- bench:latest:end -->';

interface Settings {
  readonly warmupSec: number;
  readonly throughputSec: number;
  readonly rounds: number;
  readonly latencySec: number;
  readonly wrkThreads: number;
  readonly wrkConnections: number;
  readonly heyConcurrency: number;
  /** Per hey worker: concurrency × this = the fixed rate. */
  readonly heyRatePerWorker: number;
}

const FULL: Settings = {
  warmupSec: 2,
  throughputSec: 4,
  rounds: 3,
  latencySec: 10,
  wrkThreads: 1,
  wrkConnections: 32,
  heyConcurrency: 10,
  heyRatePerWorker: 100,
};
const QUICK: Settings = { ...FULL, warmupSec: 0, throughputSec: 1, rounds: 1, latencySec: 1 };

const RSS_SAMPLE_MS = 200;

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

interface Target {
  readonly path: PathName;
  readonly url: string;
  /** The process whose memory is sampled (remora only). */
  readonly owner?: Started;
}

interface Ports {
  readonly backend: number;
  readonly nginx: number;
  readonly httpProxy: number;
  readonly inbound: number;
  readonly outbound: number;
  readonly health: number;
  readonly metrics: number;
  readonly admin: number;
}

interface Running {
  readonly targets: Target[];
  /** Why a path is not measured, for each path that is not. */
  readonly skipped: Map<PathName, string>;
  /** Every long-running process, for the CPU accounting. */
  readonly servers: Started[];
}

/** Starts nginx (backend and nginx proxy) and the proxies of the chosen paths, ready to measure. */
async function startPaths(
  procs: Processes,
  paths: readonly PathName[],
  dir: string,
  ports: Ports,
): Promise<Running> {
  const backend = `127.0.0.1:${ports.backend}`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, renderNginxConf({ dir, backendPort: ports.backend, proxyPort: ports.nginx }));
  const nginx = procs.start('nginx', 'nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', confPath]);
  await waitForHttp(`http://${backend}/`, nginx);

  const targets: Target[] = [];
  const skipped = new Map<PathName, string>();
  const servers: Started[] = [nginx];
  for (const path of paths) {
    try {
      if (path === 'direct') targets.push({ path, url: `http://${backend}/` });
      else if (path === 'nginx') targets.push({ path, url: `http://127.0.0.1:${ports.nginx}/` });
      else if (path === 'http-proxy') {
        const hp = procs.start('http-proxy', process.execPath, [
          HTTP_PROXY_BIN,
          String(ports.httpProxy),
          backend,
        ]);
        servers.push(hp);
        await waitForHttp(`http://127.0.0.1:${ports.httpProxy}/`, hp);
        targets.push({ path, url: `http://127.0.0.1:${ports.httpProxy}/` });
      } else {
        const remora = startRemora(procs, backend, ports);
        servers.push(remora);
        await waitForHttp(`http://127.0.0.1:${ports.health}/healthz/ready`, remora);
        targets.push({ path, url: `http://127.0.0.1:${ports.inbound}/`, owner: remora });
      }
    } catch (e) {
      skipped.set(path, (e as Error).message.split('\n')[0] ?? 'failed to start');
      log(`! ${path}: not measured: ${(e as Error).message}`);
    }
  }
  // A path that answers something else than the backend's body would be measuring an error page.
  for (const t of [...targets]) {
    const r = await httpGet(t.url).catch((e: Error) => ({ status: 0, body: e.message }));
    if (r.status !== 200 || r.body !== BACKEND_BODY) {
      skipped.set(
        t.path,
        `answered ${r.status} ${JSON.stringify(r.body.slice(0, 80))} instead of the backend's body`,
      );
      targets.splice(targets.indexOf(t), 1);
      log(`! ${t.path}: not measured: ${skipped.get(t.path) ?? ''}`);
    }
  }
  return { targets, skipped, servers };
}

function startRemora(procs: Processes, backend: string, ports: Ports): Started {
  if (!existsSync(PROXY_BIN)) throw new Error(`${PROXY_BIN} is not built (npm run build)`);
  return procs.start('remora-proxy', process.execPath, [PROXY_BIN], {
    env: {
      ...process.env,
      [ENV.inboundPort]: String(ports.inbound),
      [ENV.outboundPort]: String(ports.outbound),
      [ENV.healthPort]: String(ports.health),
      [ENV.metricsPort]: String(ports.metrics),
      [ENV.adminPort]: String(ports.admin),
      [ENV.bindHost]: '127.0.0.1',
      [ENV.inboundTarget]: backend,
      // Like nginx's `access_log off`: the comparison is of forwarding, not of logging.
      [ENV.accessLog]: 'off',
      [ENV.traceSampling]: '0',
      [ENV.logLevel]: 'warn',
    },
  });
}

/** wrk on every path: a warm-up, then rounds with the order rotating; req/s per round. */
async function measureThroughput(
  procs: Processes,
  targets: readonly Target[],
  s: Settings,
): Promise<Map<PathName, Throughput>> {
  const wrkArgs = (url: string, sec: number): string[] => [
    `-t${s.wrkThreads}`,
    `-c${s.wrkConnections}`,
    `-d${sec}s`,
    '--latency',
    url,
  ];
  if (s.warmupSec > 0) {
    for (const t of targets) {
      log(`warm-up ${t.path} (${s.warmupSec} s)`);
      await runWrk(procs, wrkArgs(t.url, s.warmupSec));
    }
  }
  const rounds = new Map(targets.map((t) => [t.path, { rps: [] as number[], errors: 0 }]));
  for (let r = 0; r < s.rounds; r++) {
    // Rotate the order each round so no path always runs first (or right after a heavy one).
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
    for (const t of order) {
      const w = await runWrk(procs, wrkArgs(t.url, s.throughputSec));
      const acc = rounds.get(t.path)!;
      acc.rps.push(w.requestsPerSec);
      acc.errors += w.errors;
      const errors = w.errors > 0 ? ` (${w.errors} errors)` : '';
      log(`round ${r + 1}/${s.rounds} ${t.path.padEnd(10)} ${Math.round(w.requestsPerSec)} req/s${errors}`);
    }
  }
  return new Map(
    [...rounds].map(([path, acc]) => [
      path,
      { roundsRps: acc.rps, medianRps: median(acc.rps), errors: acc.errors },
    ]),
  );
}

async function main(opts: BenchOptions): Promise<void> {
  const s = opts.quick ? QUICK : FULL;
  requireTools(['nginx', 'wrk', 'hey']);
  const procs = new Processes(log);
  const dir = mkdtempSync(join(tmpdir(), 'remora-bench-'));
  const cleanup = async (): Promise<void> => {
    await procs.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
  const removeHandlers = cleanupOnSignals(cleanup);
  try {
    const startedAt = new Date();
    const loadavgStart = loadavg();
    const busyStart = machineBusyTicks();
    const selfStart = processTicks('self');
    const t0 = Date.now();

    const [backend, nginx, httpProxy, inbound, outbound, health, metrics, admin] = await freePorts(8);
    const ports = { backend, nginx, httpProxy, inbound, outbound, health, metrics, admin } as Ports;
    const { targets, skipped, servers } = await startPaths(procs, opts.paths, dir, ports);
    if (targets.length === 0) throw new Error('no path could be measured');

    const throughput = await measureThroughput(procs, targets, s);
    const latencies = new Map<PathName, { latency: Latency; memory?: Memory }>();
    const rate = s.heyConcurrency * s.heyRatePerWorker;
    for (const t of targets) {
      log(`latency ${t.path} at ${rate} req/s for ${s.latencySec} s`);
      latencies.set(t.path, await runHey(procs, t, s, rate));
    }

    const paths: PathResult[] = opts.paths.map((path) => {
      const label = PATH_LABELS[path];
      const skip = skipped.get(path);
      if (skip !== undefined) return { path, label, skipped: skip };
      const l = latencies.get(path)!;
      return {
        path,
        label,
        throughput: throughput.get(path)!,
        latency: l.latency,
        ...(l.memory ? { memory: l.memory } : {}),
      };
    });

    // CPU used by everything else on the machine while we measured: the bench is only
    // comparable to another run if this is near zero.
    const elapsedSec = (Date.now() - t0) / 1000;
    const ours = processTicks('self') - selfStart + servers.reduce((sum, p) => sum + treeTicks(p.pid), 0);
    const otherCores = Math.max(0, (machineBusyTicks() - busyStart - ours) / 100 / elapsedSec);

    const report: BenchReport = {
      schema: 'remora-bench/1',
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
        rounds: s.rounds,
        latency: `hey -z ${s.latencySec}s -q ${s.heyRatePerWorker} -c ${s.heyConcurrency}`,
        latencyRate: rate,
        latencyResolutionMs: 0.1,
        backend: 'nginx, 1 worker, fixed 12-byte body (the nginx proxy shares that worker)',
      },
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

async function runWrk(procs: Processes, args: string[]): Promise<ReturnType<typeof parseWrk>> {
  const r = await procs.run('wrk', 'wrk', args);
  if (r.code !== 0)
    throw new Error(`wrk ${args.join(' ')} exited ${String(r.code)}:\n${r.stderr}${r.stdout}`);
  return parseWrk(r.stdout);
}

async function runHey(
  procs: Processes,
  t: Target,
  s: Settings,
  rate: number,
): Promise<{ latency: Latency; memory?: Memory }> {
  let samples = 0;
  let peak: ReturnType<typeof treeMemory>;
  let last: ReturnType<typeof treeMemory>;
  const sample = (): void => {
    if (t.owner === undefined) return;
    last = treeMemory(t.owner.pid);
    if (last === undefined) return;
    samples++;
    if (peak === undefined || last.rssKb > peak.rssKb) peak = last;
  };
  const timer = t.owner === undefined ? undefined : setInterval(sample, RSS_SAMPLE_MS);
  const args = [
    '-z',
    `${s.latencySec}s`,
    '-q',
    String(s.heyRatePerWorker),
    '-c',
    String(s.heyConcurrency),
    '-o',
    'csv',
    t.url,
  ];
  let r;
  try {
    r = await procs.run('hey', 'hey', args);
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
  sample();
  if (r.code !== 0) throw new Error(`hey ${args.join(' ')} exited ${String(r.code)}:\n${r.stderr}`);
  const h = parseHeyCsv(r.stdout);
  const percentilesMs: Record<string, number> = {};
  // hey's resolution is 0.1 ms; rounding to µs only removes float noise (0.30000000000000004).
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  for (const k of PERCENTILE_KEYS) percentilesMs[k] = round(percentile(h.latenciesMs, Number(k)));
  const latency: Latency = {
    targetRps: rate,
    achievedRps: h.latenciesMs.length / s.latencySec,
    requests: h.latenciesMs.length,
    statuses: h.statuses,
    percentilesMs,
    meanMs: round(mean(h.latenciesMs)),
    maxMs: h.latenciesMs[h.latenciesMs.length - 1] ?? Number.NaN,
  };
  if (peak === undefined || last === undefined) return { latency };
  const mb = (kb: number): number => Number((kb / 1024).toFixed(1));
  const hwmByPid = new Map(last.processes.map((p) => [p.pid, p.hwmKb]));
  return {
    latency,
    memory: {
      rssMaxMb: mb(peak.rssKb),
      hwmMb: mb(last.hwmKb),
      samples,
      processes: peak.processes.map((p) => ({
        command: p.command,
        rssMb: mb(p.rssKb),
        hwmMb: mb(hwmByPid.get(p.pid) ?? p.hwmKb),
      })),
    },
  };
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
  for (const t of checkTargets(report)) {
    const verdict = t.met === undefined ? 'not measured' : t.met ? 'met' : 'NOT MET';
    console.log(`remora ${t.what}: ${t.measured} (target ${t.target}): ${verdict}`);
  }
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
  if (report.schema !== 'remora-bench/1')
    throw new Error(`schema "${String(report.schema)}" is not remora-bench/1`);
  await writeOutputs(report, opts, false);
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
