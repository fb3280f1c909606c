/**
 * Runs the compiled supervisor as a real process on loopback (every port 0, read back from its
 * `supervisor_listening` log line) and drives real HTTP load at it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV } from '../../../proxy/src/contract.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const FIXTURE_ENGINE = join(FIXTURES, 'engine.mjs');
const RUNNER = join(FIXTURES, 'run-supervisor.mjs');

export interface Ports {
  inbound: number;
  outbound: number;
  health: number;
  metrics: number;
  admin: number;
}

export interface RunningSupervisor {
  readonly proc: ChildProcess;
  readonly ports: Ports;
  readonly token: string;
  readonly dir: string;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly engine?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Wait for /healthz/ready = 200 (default true). */
  readonly waitReady?: boolean;
  /** The command instead of `node run-supervisor.mjs ENGINE` (e.g. the bin as its shebang runs it). */
  readonly argv?: readonly string[];
}

/** Starts the supervisor and waits until it is listening and /healthz/ready says 200. */
export async function startSupervisor(opts: StartOptions = {}): Promise<RunningSupervisor> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-sup-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.tunnelPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.adminTokenFile]: join(dir, 'admin-token'),
    [ENV.logLevel]: 'info',
    ...opts.env,
  };
  const [cmd, ...args] = opts.argv ?? [process.execPath, RUNNER, opts.engine ?? FIXTURE_ENGINE];
  const proc = spawn(cmd as string, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let buf = '';
  proc.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let ports: Ports | undefined;
  const deadline = Date.now() + 15_000;
  while (ports === undefined) {
    const l = lines.find((x) => x.event === 'supervisor_listening');
    if (l !== undefined) ports = l.ports as Ports;
    else if (proc.exitCode !== null || Date.now() > deadline)
      throw new Error(`supervisor did not start:\n${stderr}\n${JSON.stringify(lines)}`);
    else await sleep(20);
  }
  const running: RunningSupervisor = {
    proc,
    ports,
    dir,
    token: readFileSync(env[ENV.adminTokenFile] as string, 'utf8').trim(),
    logs: () => lines,
    exited,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      for (const pid of enginePids(lines)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.waitReady !== false)
    await waitFor('ready', async () => (await get(ports.health, '/healthz/ready')).status === 200, 15_000);
  return running;
}

function enginePids(lines: readonly Record<string, unknown>[]): number[] {
  return lines
    .filter((l) => l.event === 'engine_starting' && typeof l.enginePid === 'number')
    .map((l) => l.enginePid as number);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export function request(
  port: number,
  path: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    agent?: http.Agent | false;
    timeoutMs?: number;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error('client timeout'), { code: 'ETIMEDOUT_CLIENT' })),
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function get(port: number, path: string): Promise<Reply> {
  return request(port, path);
}

export async function config(s: RunningSupervisor): Promise<{
  generation: number | null;
  version: string;
  engines: { generation: number; pid: number; state: string; role: string; version: string }[];
  [k: string]: unknown;
}> {
  return JSON.parse((await get(s.ports.admin, '/config')).body) as never;
}

export function upgrade(s: RunningSupervisor, body?: unknown): Promise<Reply> {
  return request(s.ports.admin, '/upgrade', {
    method: 'POST',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    timeoutMs: 30_000,
  });
}

/** Sum of a metric's samples whose labels include `labels`, from the supervisor's /metrics. */
export async function metric(
  s: RunningSupervisor,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = (await get(s.ports.metrics, '/metrics')).body;
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

export interface LoadStats {
  ok: number;
  /** Non-2xx answers. */
  badStatus: number;
  refused: number;
  reset: number;
  /** Any other error (timeouts, ...). */
  other: number;
  errors: Record<string, number>;
  /** Per second of the run: how many requests succeeded. */
  okPerSecond: number[];
}

/** A running load loop; `stop()` ends it and returns what happened. */
export interface Load {
  stop(): Promise<LoadStats>;
  readonly stats: LoadStats;
}

/**
 * A bounded load loop on loopback: `workers` concurrent sequential clients, half on keep-alive
 * connections, half opening a new connection per request, until stopped (at most `maxMs`).
 */
export function startLoad(port: number, workers = 8, maxMs = 60_000, path = '/'): Load {
  const stats: LoadStats = {
    ok: 0,
    badStatus: 0,
    refused: 0,
    reset: 0,
    other: 0,
    errors: {},
    okPerSecond: [],
  };
  const start = Date.now();
  let stopped = false;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: workers });
  const worker = async (i: number): Promise<void> => {
    while (!stopped && Date.now() - start < maxMs) {
      try {
        const r = await request(port, path, { agent: i % 2 === 0 ? keepAlive : false, timeoutMs: 15_000 });
        if (r.status >= 200 && r.status < 300) {
          stats.ok += 1;
          const sec = Math.floor((Date.now() - start) / 1000);
          stats.okPerSecond[sec] = (stats.okPerSecond[sec] ?? 0) + 1;
        } else stats.badStatus += 1;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        stats.errors[code] = (stats.errors[code] ?? 0) + 1;
        if (code === 'ECONNREFUSED') stats.refused += 1;
        else if (code === 'ECONNRESET' || code === 'EPIPE') stats.reset += 1;
        else stats.other += 1;
      }
    }
  };
  const all = Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  return {
    stats,
    stop: async () => {
      stopped = true;
      await all;
      keepAlive.destroy();
      return stats;
    },
  };
}

/** startLoad for a fixed time. */
export async function loadLoop(
  port: number,
  durationMs: number,
  workers = 8,
  path = '/',
): Promise<LoadStats> {
  const load = startLoad(port, workers, durationMs, path);
  await sleep(durationMs);
  return load.stop();
}
