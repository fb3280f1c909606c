/**
 * Supervisor measurements for docs/supervisor.md (loopback, explicit mode, the compiled
 * remora-proxy bin = supervisor + engine, a Node HTTP app started here):
 *   1. engine crash → serving again: kill -9 the engine, time a request sent right after the
 *      kill (it waits in the backlog, fail-closed) or relayed (degrade); N kills per mode
 *   2. requests lost per upgrade: POST /upgrade N times under a steady load loop
 *   3. RSS of the supervisor and of the whole sidecar (supervisor + engine) under `hey` at
 *      a fixed rate
 * Usage: npm run build && tsc -p bench && node bench/dist/supervisor.js [kills] [upgrades] [rate]
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV } from '@remora/proxy/contract';
import { percentile } from './tools.js';
import { treeMemory } from './procs.js';

const BIN = fileURLToPath(new URL('../../proxy/dist/bin/remora-proxy.js', import.meta.url));
const [kills = 10, upgrades = 10, rate = 1000] = process.argv.slice(2).map(Number);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function req(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; agent?: http.Agent | false } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
        timeout: 20_000,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end();
  });
}

interface Sidecar {
  proc: ChildProcess;
  ports: Record<string, number>;
  token: string;
  dir: string;
}

async function startSidecar(
  appPort: number,
  mode: string,
  extra: Record<string, string> = {},
): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-bench-sup-'));
  const env = {
    PATH: process.env.PATH ?? '',
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
    [ENV.failureMode]: mode,
    [ENV.accessLog]: 'off',
    [ENV.drainSeconds]: '2',
    [ENV.adminTokenFile]: join(dir, 'token'),
    ...extra,
  };
  const proc = spawn(process.execPath, [BIN], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  for (;;) {
    const line = out.split('\n').find((l) => l.includes('"supervisor_listening"'));
    if (line !== undefined) {
      const ports = (JSON.parse(line) as { ports: Record<string, number> }).ports;
      const sc = { proc, ports, token: readFileSync(join(dir, 'token'), 'utf8').trim(), dir };
      await waitReady(sc);
      return sc;
    }
    if (proc.exitCode !== null) throw new Error(`remora-proxy exited:\n${out}`);
    await sleep(20);
  }
}

async function waitReady(s: Sidecar): Promise<void> {
  for (;;) {
    const r = await req(s.ports.health as number, '/healthz/ready').catch(() => undefined);
    if (r?.status === 200) return;
    await sleep(20);
  }
}

async function activeEngine(s: Sidecar): Promise<number> {
  const c = JSON.parse((await req(s.ports.admin as number, '/config')).body) as {
    engines: { pid: number; role: string; state: string }[];
  };
  const e = c.engines.find((x) => x.role === 'active' && x.state === 'ready');
  if (e === undefined) throw new Error('no ready engine');
  return e.pid;
}

function stop(s: Sidecar): void {
  s.proc.kill('SIGKILL');
  rmSync(s.dir, { recursive: true, force: true });
}

async function standbyWaiting(s: Sidecar): Promise<boolean> {
  const c = JSON.parse((await req(s.ports.admin as number, '/config')).body) as {
    engines: { role: string; loaded: boolean }[];
  };
  return c.engines.some((e) => e.role === 'standby' && e.loaded);
}

async function crashRecovery(appPort: number, mode: string, standby: boolean): Promise<number[]> {
  const s = await startSidecar(appPort, mode, standby ? { [ENV.engineStandby]: 'on' } : {});
  const times: number[] = [];
  try {
    for (let i = 0; i < kills; i++) {
      while (standby && !(await standbyWaiting(s))) await sleep(50);
      const pid = await activeEngine(s);
      process.kill(pid, 'SIGKILL');
      const t0 = performance.now();
      const r = await req(s.ports.inbound as number, '/');
      if (r.status !== 200) throw new Error(`status ${r.status}`);
      times.push(performance.now() - t0);
      await waitReady(s);
      // degrade: wait for the engine itself, not the relay
      while ((await activeEngine(s).catch(() => 0)) === 0) await sleep(20);
      await sleep(1200); // past the backoff's stable period, as a real crash would be
    }
  } finally {
    stop(s);
  }
  return times.sort((a, b) => a - b);
}

async function upgradeLoss(
  appPort: number,
): Promise<{ upgrades: number; ok: number; failed: number; errors: Record<string, number> }> {
  const s = await startSidecar(appPort, 'fail-closed');
  let stopped = false;
  const stats = { upgrades, ok: 0, failed: 0, errors: {} as Record<string, number> };
  const keep = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const worker = async (i: number): Promise<void> => {
    while (!stopped) {
      try {
        const r = await req(s.ports.inbound as number, '/', { agent: i % 2 === 0 ? keep : false });
        if (r.status === 200) stats.ok += 1;
        else stats.failed += 1;
      } catch (err) {
        stats.failed += 1;
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        stats.errors[code] = (stats.errors[code] ?? 0) + 1;
      }
    }
  };
  const load = Promise.all([0, 1, 2, 3].map(worker));
  try {
    for (let i = 0; i < upgrades; i++) {
      const r = await req(s.ports.admin as number, '/upgrade', {
        method: 'POST',
        headers: { authorization: `Bearer ${s.token}` },
      });
      if (r.status !== 200) throw new Error(`upgrade ${i}: ${r.body}`);
    }
    await sleep(2500); // the last old engine drains
  } finally {
    stopped = true;
    await load;
    keep.destroy();
    stop(s);
  }
  return stats;
}

async function rssUnderLoad(appPort: number): Promise<Record<string, unknown>> {
  const s = await startSidecar(appPort, 'fail-closed');
  try {
    const conc = 20;
    const hey = spawn(
      'hey',
      ['-z', '10s', '-c', String(conc), '-q', String(rate / conc), `http://127.0.0.1:${s.ports.inbound}/`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let heyOut = '';
    hey.stdout?.on('data', (c: Buffer) => (heyOut += c.toString()));
    const samples: { supervisorKb: number; totalKb: number }[] = [];
    for (let i = 0; i < 8; i++) {
      await sleep(1000);
      const m = treeMemory(s.proc.pid as number);
      const sup = m?.processes.find((p) => p.pid === s.proc.pid);
      if (m !== undefined && sup !== undefined) samples.push({ supervisorKb: sup.rssKb, totalKb: m.rssKb });
    }
    await new Promise((r) => hey.on('exit', r));
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(heyOut)?.[1];
    const max = (k: 'supervisorKb' | 'totalKb'): number => Math.max(...samples.map((x) => x[k]));
    return {
      rate,
      achievedRps: Number(rps),
      supervisorRssMaxKb: max('supervisorKb'),
      sidecarRssMaxKb: max('totalKb'),
      samples: samples.length,
    };
  } finally {
    stop(s);
  }
}

async function main(): Promise<void> {
  const app = http.createServer((q, r) => {
    q.resume();
    r.end('ok\n');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  const out: Record<string, unknown> = { node: process.version };
  try {
    for (const [name, mode, standby] of [
      ['fail-closed', 'fail-closed', false],
      ['fail-closed+standby', 'fail-closed', true],
      ['degrade', 'degrade', false],
    ] as const) {
      const t = await crashRecovery(appPort, mode, standby);
      out[`crashToServing_${name}_ms`] = {
        n: t.length,
        p50: Math.round(percentile(t, 50)),
        p99: Math.round(percentile(t, 99)),
        max: Math.round(t[t.length - 1] ?? NaN),
      };
      console.error(`crash recovery (${name}): ${JSON.stringify(out[`crashToServing_${name}_ms`])}`);
    }
    out.upgrades = await upgradeLoss(appPort);
    console.error(`upgrades: ${JSON.stringify(out.upgrades)}`);
    out.rss = await rssUnderLoad(appPort);
  } finally {
    app.closeAllConnections();
    app.close();
  }
  console.log(JSON.stringify(out, null, 2));
}

await main();
