/**
 * Every process the benchmark starts goes through one registry, so that a failure, an
 * exception or Ctrl-C stops all of them by PID (never by name: other people's nginx and
 * node processes share this machine).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { get } from 'node:http';
import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { parseProcStat, parseSmapsRollup } from './tools.js';
import type { ProcStat, SmapsRollup } from './tools.js';

export interface Started {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  /** The last lines of stdout and stderr, for error messages. */
  tail(): string;
}

export interface RunResult {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

const TAIL_BYTES = 4096;

export class Processes {
  readonly #live = new Set<Started>();
  readonly #say: (msg: string) => void;

  /** `say` hears of every start and stop, so a user (or a test) can check nothing is left. */
  constructor(say: (msg: string) => void = () => {}) {
    this.#say = say;
  }

  start(
    name: string,
    cmd: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; onStdout?: (chunk: string) => void } = {},
  ): Started {
    const proc = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd}): is it installed?`);
    let tail = '';
    const keep = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    proc.stdout.on('data', (c: Buffer) => {
      keep(c);
      opts.onStdout?.(c.toString('utf8'));
    });
    proc.stderr.on('data', keep);
    const exited = new Promise<number | string>((resolve) => {
      proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      proc.once('error', (err) => resolve(`spawn error: ${err.message}`));
    });
    const started: Started = { name, pid: proc.pid, proc, exited, tail: () => tail };
    this.#live.add(started);
    this.#say(`started ${name} (pid ${proc.pid})`);
    void exited.then((code) => {
      this.#live.delete(started);
      this.#say(`${name} (pid ${started.pid}) exited: ${String(code)}`);
    });
    return started;
  }

  /** Runs a command to completion (wrk, hey), still killable by stopAll() meanwhile. */
  async run(name: string, cmd: string, args: readonly string[]): Promise<RunResult> {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd}): is it installed?`);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => out.push(c));
    proc.stderr.on('data', (c: Buffer) => err.push(c));
    const exited = new Promise<number | string>((resolve) => {
      proc.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      proc.once('error', (e) => resolve(`spawn error: ${e.message}`));
    });
    const started: Started = {
      name,
      pid: proc.pid,
      proc,
      exited,
      tail: () => Buffer.concat(err).toString('utf8'),
    };
    this.#live.add(started);
    const code = await exited;
    this.#live.delete(started);
    return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  }

  /** SIGTERM, then SIGKILL after `graceMs` if the process is still there. */
  async stop(p: Started, graceMs = 3000): Promise<void> {
    if (!this.#live.has(p)) return;
    signal(p.pid, 'SIGTERM');
    const timer = setTimeout(() => signal(p.pid, 'SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#live].map((p) => this.stop(p)));
  }

  /** For a signal handler that must not wait: kill every live process now. */
  killAllNow(): void {
    for (const p of this.#live) signal(p.pid, 'SIGKILL');
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * On SIGINT/SIGTERM/SIGHUP run `cleanup` once, then exit with 128+signal. Returns a function
 * that removes the handlers.
 */
export function cleanupOnSignals(cleanup: () => Promise<void>): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const numbers: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
  let running = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (running) return;
    running = true;
    process.stderr.write(`\n${sig}: stopping everything this run started...\n`);
    cleanup().then(
      () => process.exit(128 + (numbers[sig] ?? 0)),
      () => process.exit(128 + (numbers[sig] ?? 0)),
    );
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}

/**
 * `n` distinct free loopback ports. All listeners are open at once, so the kernel cannot hand
 * out the same port twice; the usual race (someone else binds it before we do) remains, and
 * shows as a clear start-up error of the process that lost it.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      const addr = s.address();
      if (addr === null || typeof addr === 'string') throw new Error('no port from the kernel');
      ports.push(addr.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** One GET; resolves with status and body, rejects on a connection error. */
export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Polls `url` until it answers 200, failing early (with its output) if `owner` exits. */
export async function waitForHttp(url: string, owner: Started, timeoutMs = 10_000): Promise<void> {
  let gone: number | string | undefined;
  void owner.exited.then((c) => (gone = c));
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (gone !== undefined) {
      throw new Error(`${owner.name} exited (${String(gone)}) before ${url} answered:\n${owner.tail()}`);
    }
    try {
      const r = await httpGet(url, 500);
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `${owner.name}: ${url} did not answer 200 within ${timeoutMs} ms (last: ${last})\n${owner.tail()}`,
  );
}

export interface ProcessMemory {
  readonly pid: number;
  /** What runs: the script's file name for node, else the program's. */
  readonly command: string;
  readonly rssKb: number;
  readonly hwmKb: number;
}

export interface Memory {
  /** Resident set size now, summed over the process and its descendants (kB). */
  readonly rssKb: number;
  /** Peak resident set size ("high water mark"), summed over the same processes (kB). */
  readonly hwmKb: number;
  readonly processes: readonly ProcessMemory[];
}

/** Memory of a process tree from /proc/<pid>/status (VmRSS, VmHWM); undefined if gone. */
export function treeMemory(pid: number): Memory | undefined {
  const processes = [pid, ...descendants(pid)].flatMap((p): ProcessMemory[] => {
    const status = readStatus(p);
    if (status === undefined) return [];
    return [
      {
        pid: p,
        command: commandOf(p),
        rssKb: statusField(status, 'VmRSS'),
        hwmKb: statusField(status, 'VmHWM'),
      },
    ];
  });
  if (processes.length === 0) return undefined;
  return {
    rssKb: processes.reduce((sum, p) => sum + p.rssKb, 0),
    hwmKb: processes.reduce((sum, p) => sum + p.hwmKb, 0),
    processes,
  };
}

export function commandOf(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => a !== '');
    const script = argv.slice(1).find((a) => !a.startsWith('-'));
    const shown = /node$/.test(argv[0] ?? '') && script !== undefined ? script : (argv[0] ?? '?');
    return shown.slice(shown.lastIndexOf('/') + 1);
  } catch {
    return '?';
  }
}

function readStatus(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
}

export function statusField(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  return m?.[1] === undefined ? 0 : Number(m[1]);
}

/** All descendants of `pid`, found by each process's parent in /proc/<pid>/stat. */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const parent = frontier.pop();
    for (const [child, p] of parentOf) {
      if (p === parent) {
        out.push(child);
        frontier.push(child);
      }
    }
  }
  return out;
}

/** Busy CPU time of the whole machine so far, in clock ticks (all cores, from /proc/stat). */
export function machineBusyTicks(): number {
  const first = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, user, nice, system, , , irq, softirq, steal] = first.trim().split(/\s+/).map(Number);
  return [user, nice, system, irq, softirq, steal].reduce<number>((s, v) => s + (v ?? 0), 0);
}

/**
 * CPU time of a process in clock ticks: its own plus that of its children it has reaped
 * (wrk and hey, once finished, count towards the bench's own process this way).
 */
export function processTicks(pid: number | 'self'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime are fields 14-17; f[0] is field 3.
    return [f[11], f[12], f[13], f[14]].reduce<number>((s, v) => s + Number(v ?? 0), 0);
  } catch {
    return 0;
  }
}

/** CPU ticks of a process and all its live descendants. */
export function treeTicks(pid: number): number {
  return [pid, ...descendants(pid)].reduce((s, p) => s + processTicks(p), 0);
}

/** /proc/<pid>/stat, parsed; undefined when the process is gone. */
export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** /proc/<pid>/smaps_rollup of one process, parsed; undefined when it is gone. */
export function readSmaps(pid: number): SmapsRollup | undefined {
  try {
    return parseSmapsRollup(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Resolves once 127.0.0.1:`port` accepts a connection, failing early if `owner` exits. */
export async function waitForPort(port: number, owner: Started, timeoutMs = 10_000): Promise<void> {
  let gone: number | string | undefined;
  void owner.exited.then((c) => (gone = c));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone !== undefined) throw new Error(`${owner.name} exited (${String(gone)}):\n${owner.tail()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${owner.name}: port ${port} did not accept within ${timeoutMs} ms\n${owner.tail()}`);
}
