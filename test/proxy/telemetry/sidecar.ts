/**
 * Telemetry tests' view of a real sidecar: the compiled `remora-proxy` binary in explicit mode on
 * loopback (no capture, so no root), every port 0 and read back from its `supervisor_listening`
 * log line, plus small real servers: an app that records the headers it receives, and a client.
 * Every process is stopped by PID.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV } from '../../../proxy/src/contract.js';

export const PROXY_BIN = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));

export interface SidecarPorts {
  inbound: number;
  outbound: number;
  health: number;
  metrics: number;
  admin: number;
}

export interface Sidecar {
  readonly pid: number;
  readonly ports: SidecarPorts;
  /** Every JSON log line so far (stdout). */
  logs(): Record<string, unknown>[];
  stderr(): string;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts remora-proxy with `env` on top of explicit-mode defaults; resolves once it is ready. */
export async function startSidecar(env: Readonly<Record<string, string>>): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-tel-'));
  const fullEnv: Record<string, string> = {
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
    ...env,
  };
  const proc = spawn(process.execPath, [PROXY_BIN], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let buf = '';
  proc.stdout.on('data', (c: Buffer) => {
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
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    // Engines are children of the supervisor: stop them by the PIDs it logged, then it.
    for (const l of lines) {
      if (typeof l.enginePid === 'number') {
        try {
          process.kill(l.enginePid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  let ports: SidecarPorts | undefined;
  const deadline = Date.now() + 20_000;
  try {
    while (ports === undefined) {
      ports = portsOf(lines);
      if (ports !== undefined) break;
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`remora-proxy did not start:\n${stderr}\n${JSON.stringify(lines)}`);
      }
      await sleep(20);
    }
    const p = ports;
    for (;;) {
      const r = await get(`http://127.0.0.1:${p.health}/healthz/ready`).catch(() => undefined);
      if (r?.status === 200) break;
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`remora-proxy never became ready:\n${stderr}\n${JSON.stringify(lines)}`);
      }
      await sleep(25);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: proc.pid as number, ports, logs: () => lines, stderr: () => stderr, stop };
}

/**
 * The bound ports: from the supervisor's `supervisor_listening` line when a supervisor runs, or
 * from the engine's own `listening` line when the engine runs alone.
 */
function portsOf(lines: readonly Record<string, unknown>[]): SidecarPorts | undefined {
  const sup = lines.find((x) => x.event === 'supervisor_listening');
  if (sup !== undefined) return sup.ports as SidecarPorts;
  const eng = lines.find((x) => x.event === 'listening');
  if (eng === undefined) return undefined;
  const l = eng.listeners as Record<keyof SidecarPorts, { port: number }>;
  return {
    inbound: l.inbound.port,
    outbound: l.outbound.port,
    health: l.health.port,
    metrics: l.metrics.port,
    admin: l.admin.port,
  };
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export function get(url: string, headers: Record<string, string> = {}, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: agent ?? false }, (res) => {
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
    });
    req.on('error', reject);
  });
}

export interface RecordingApp {
  readonly port: number;
  /** Headers of every request the app received, in order. */
  readonly received: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/**
 * An upstream app that records request headers and answers 200 `ok`; `/status/NNN` answers NNN.
 * With `forwardTo`, it calls that URL for each request, copying the trace headers the way an
 * instrumented app does, and answers with the nested response.
 */
export async function startRecordingApp(forwardTo?: () => string): Promise<RecordingApp> {
  const received: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    received.push(req.headers);
    req.resume();
    req.on('end', () => {
      const m = /^\/status\/(\d{3})$/.exec(req.url ?? '');
      if (forwardTo !== undefined) {
        const h: Record<string, string> = {};
        for (const k of ['traceparent', 'tracestate']) {
          const v = req.headers[k];
          if (typeof v === 'string') h[k] = v;
        }
        get(forwardTo(), h).then(
          (r) => res.writeHead(r.status).end(r.body),
          () => res.writeHead(599).end(),
        );
        return;
      }
      res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A loopback port that was free a moment ago: connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Reads the proxy's /metrics and sums the samples of `name` whose labels include `match`. */
export async function metricSum(
  port: number,
  name: string,
  match: Record<string, string> = {},
): Promise<number> {
  const text = (await get(`http://127.0.0.1:${port}/metrics`)).body;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[lm[1] as string] = lm[2] as string;
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) sum += Number(m[4]);
  }
  return sum;
}
