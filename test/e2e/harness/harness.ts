/**
 * End-to-end harness: "pods" are network namespaces joined by veths to a bridge that lives in a
 * namespace of its own, never in the host's. Every name carries the harness prefix, a random run
 * id and the owning PID, so parallel test files never collide and a later run can tell a leftover
 * of a crashed run (owner PID dead) from a live one. Nothing is ever created in the host's
 * namespace: addresses, routes and iptables rules exist only inside the namespaces made here.
 *
 * Cleanup: `teardown()` in afterAll stops every process it started by PID, then deletes every
 * namespace (which destroys the veths and rules inside them). A process 'exit' hook does the same
 * synchronously if afterAll never ran; `Harness.create()` first sweeps leftovers of dead runs.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Every namespace the harness makes starts with this. */
export const PREFIX = 'rmrh';
/** Private test ranges; they exist only inside the harness's namespaces. */
export const SUBNET4 = '10.213.0';
export const SUBNET6 = 'fd00:213::';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const AGENT = fileURLToPath(new URL('./agent.mjs', import.meta.url));

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Identity {
  readonly uid: number;
  readonly gid: number;
}

export interface Pod {
  readonly name: string;
  /** The network namespace. */
  readonly ns: string;
  readonly ip: string;
  readonly ip6: string;
  /** The pod side of its veth. */
  readonly iface: string;
}

export interface Proc {
  readonly pid: number;
  readonly pod: Pod;
  readonly label: string;
  /** Everything it wrote so far (stdout and stderr), for failure messages. */
  output(): string;
  /** Resolves with the first stdout line matching, or rejects when it exits first. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<number | null>;
}

/** Runs a command in the host's view (only `ip netns ...` and friends are used with it). */
function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

function quiet(cmd: string, args: readonly string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // Cleanup of something already gone.
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const NAME_RE = new RegExp(`^${PREFIX}-([a-z0-9]+)-(\\d+)-`);

/** Namespaces named by this harness, with their run id and owner PID. */
export function listHarnessNamespaces(): { ns: string; runId: string; pid: number }[] {
  const out: { ns: string; runId: string; pid: number }[] = [];
  for (const line of sh('ip', ['netns', 'list']).split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const m = NAME_RE.exec(ns);
    if (m) out.push({ ns, runId: m[1] ?? '', pid: Number(m[2]) });
  }
  return out;
}

/** Kills what still runs inside a namespace (processes we started there), then deletes it. */
function destroyNamespace(ns: string): void {
  let pids: string[] = [];
  try {
    pids = sh('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean);
  } catch {
    // Already gone.
  }
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
  quiet('ip', ['netns', 'del', ns]);
}

/** Removes namespaces left by runs whose owner process is dead. Returns what it removed. */
export function sweepLeftovers(): string[] {
  const removed: string[] = [];
  for (const { ns, pid } of listHarnessNamespaces()) {
    if (pid === process.pid || alive(pid)) continue;
    destroyNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

export interface SpawnOptions {
  /** Run as this UID/GID (setpriv, supplementary groups cleared); root when absent. */
  readonly as?: Identity;
  readonly env?: Readonly<Record<string, string>>;
  readonly label?: string;
  /** Keep stdin open as a pipe (for processes that read commands from it). */
  readonly stdin?: boolean;
}

interface AgentClient {
  readonly child: ChildProcess;
  readonly pending: Map<number, (answer: Record<string, unknown>) => void>;
  nextId: number;
}

export class Harness {
  readonly runId: string;
  readonly bridgeNs: string;
  readonly bridge: string;
  private readonly pods: Pod[] = [];
  private readonly procs = new Map<number, { child: ChildProcess; proc: Proc }>();
  private readonly clients = new Map<string, Promise<AgentClient>>();
  private readonly dirs: string[] = [];
  private torn = false;
  private readonly exitHook = (): void => this.teardownSync();

  private constructor() {
    this.runId = randomBytes(4).toString('hex').slice(0, 5);
    this.bridgeNs = this.nsName('br');
    this.bridge = `r${this.runId}br`;
  }

  /** Sweeps leftovers of crashed runs, then makes the bridge namespace and bridge. */
  static create(): Harness {
    sweepLeftovers();
    const h = new Harness();
    process.on('exit', h.exitHook);
    try {
      sh('ip', ['netns', 'add', h.bridgeNs]);
      sh('ip', ['-n', h.bridgeNs, 'link', 'add', h.bridge, 'type', 'bridge']);
      sh('ip', ['-n', h.bridgeNs, 'link', 'set', h.bridge, 'up']);
    } catch (err) {
      h.teardownSync();
      throw err;
    }
    return h;
  }

  private nsName(pod: string): string {
    return `${PREFIX}-${this.runId}-${process.pid}-${pod}`;
  }

  /** A new pod: namespace, lo up, a veth to the bridge, one IPv4 and one IPv6 address. */
  addPod(name: string): Pod {
    if (this.torn) throw new Error('harness already torn down');
    const i = this.pods.length + 1;
    const pod: Pod = {
      name,
      ns: this.nsName(name),
      ip: `${SUBNET4}.${10 + i}`,
      ip6: `${SUBNET6}${10 + i}`,
      iface: `r${this.runId}p${i}`,
    };
    const hostSide = `r${this.runId}b${i}`;
    this.pods.push(pod);
    sh('ip', ['netns', 'add', pod.ns]);
    sh('ip', ['-n', pod.ns, 'link', 'set', 'lo', 'up']);
    // Both ends are born inside our namespaces: the veth never exists in the host's.
    sh('ip', [
      '-n',
      this.bridgeNs,
      'link',
      'add',
      hostSide,
      'type',
      'veth',
      'peer',
      'name',
      pod.iface,
      'netns',
      pod.ns,
    ]);
    sh('ip', ['-n', this.bridgeNs, 'link', 'set', hostSide, 'master', this.bridge, 'up']);
    sh('ip', ['-n', pod.ns, 'addr', 'add', `${pod.ip}/24`, 'dev', pod.iface]);
    sh('ip', ['-n', pod.ns, '-6', 'addr', 'add', `${pod.ip6}/64`, 'dev', pod.iface, 'nodad']);
    sh('ip', ['-n', pod.ns, 'link', 'set', pod.iface, 'up']);
    return pod;
  }

  /** The argv that runs `cmd args` inside the pod, optionally as another identity. */
  private argv(pod: Pod, cmd: string, args: readonly string[], as?: Identity): string[] {
    const priv = as ? ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups'] : [];
    return ['netns', 'exec', pod.ns, ...priv, cmd, ...args];
  }

  /** Runs a command to completion inside the pod. Never rejects on a non-zero exit. */
  exec(
    pod: Pod,
    cmd: string,
    args: readonly string[],
    opts: { as?: Identity; input?: string; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = execFile(
        'ip',
        this.argv(pod, cmd, args, opts.as),
        { cwd: REPO_ROOT, timeout: opts.timeoutMs ?? 15_000, encoding: 'utf8' },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      // A command may exit without reading its input (a refusal, a usage error): the pipe then
      // breaks (EPIPE). What it printed and its exit code are the result; the write error is not.
      child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err;
      });
      child.stdin?.end(opts.input ?? '');
    });
  }

  /** Starts a long-running process inside the pod; `stop(proc)` or teardown ends it by PID. */
  spawn(pod: Pod, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Proc {
    if (this.torn) throw new Error('harness already torn down');
    // `ip netns exec` and setpriv both exec, so the PID we get is the process itself.
    const child = spawn('ip', this.argv(pod, cmd, args, opts.as), {
      cwd: REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const { pid, stdout, stderr } = child;
    if (pid === undefined || !stdout || !stderr) throw new Error(`could not start ${cmd} in ${pod.name}`);
    let out = '';
    let stdoutText = '';
    stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      stdoutText += d;
    });
    stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const label = opts.label ?? `${cmd} ${args.join(' ')}`;
    const proc: Proc = {
      pid,
      pod,
      label,
      output: () => out,
      exited,
      waitForLine: (re, timeoutMs = 10_000) =>
        new Promise((resolve, reject) => {
          const check = (): boolean => {
            const line = stdoutText.split('\n').find((l) => re.test(l));
            if (line === undefined) return false;
            cleanup();
            resolve(line);
            return true;
          };
          const onData = (): void => void check();
          const timer = setTimeout(() => {
            cleanup();
            reject(
              new Error(`${label} in ${pod.name}: no line ${re} within ${timeoutMs} ms; output:\n${out}`),
            );
          }, timeoutMs);
          const onExit = (code: number | null): void => {
            if (check()) return;
            cleanup();
            reject(new Error(`${label} in ${pod.name} exited (${code}) before ${re}; output:\n${out}`));
          };
          const cleanup = (): void => {
            clearTimeout(timer);
            stdout.off('data', onData);
            child.off('exit', onExit);
          };
          if (check()) return;
          stdout.on('data', onData);
          child.on('exit', onExit);
        }),
    };
    void exited.then(() => this.procs.delete(pid));
    this.procs.set(pid, { child, proc });
    return proc;
  }

  /** A harness agent server (see agent.mjs), started and bound before this resolves. */
  async startAgent(
    pod: Pod,
    command: string,
    args: readonly string[],
    opts: SpawnOptions = {},
  ): Promise<Proc> {
    const proc = this.spawn(pod, process.execPath, [AGENT, command, ...args], {
      ...opts,
      label: opts.label ?? `agent ${command}`,
      env: { AGENT_NAME: pod.name, ...opts.env },
    });
    await proc.waitForLine(/^listening /);
    return proc;
  }

  /**
   * Sends one command to the pod's long-lived agent client for `as` (started on first use,
   * stopped by PID at teardown) and resolves with its JSON answer. See `client` in agent.mjs.
   */
  async agentRequest(
    pod: Pod,
    command: Record<string, unknown>,
    as?: Identity,
  ): Promise<Record<string, unknown>> {
    const key = `${pod.ns}/${as ? `${as.uid}:${as.gid}` : 'root'}`;
    let client = this.clients.get(key);
    if (!client) {
      client = this.startClient(pod, as);
      this.clients.set(key, client);
    }
    const c = await client;
    const id = c.nextId++;
    return new Promise((resolve, reject) => {
      c.pending.set(id, resolve);
      c.child.stdin?.write(`${JSON.stringify({ id, ...command })}\n`, (err) => {
        if (err) {
          c.pending.delete(id);
          reject(err);
        }
      });
    });
  }

  private async startClient(pod: Pod, as?: Identity): Promise<AgentClient> {
    const proc = await this.startAgent(pod, 'client', [], { as, stdin: true, label: 'agent client' });
    const entry = this.procs.get(proc.pid);
    if (!entry) throw new Error(`agent client in ${pod.name} exited:\n${proc.output()}`);
    const client: AgentClient = { child: entry.child, pending: new Map(), nextId: 1 };
    let buf = '';
    entry.child.stdout?.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const answer = JSON.parse(line) as Record<string, unknown>;
        const id = Number(answer.id);
        client.pending.get(id)?.(answer);
        client.pending.delete(id);
      }
    });
    void proc.exited.then(() => {
      for (const settle of client.pending.values())
        settle({ error: `agent client exited: ${proc.output()}` });
      client.pending.clear();
    });
    return client;
  }

  /** A fresh directory (owned by `owner` when given), removed at teardown. */
  tempDir(owner?: Identity): string {
    const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-${this.runId}-`));
    this.dirs.push(dir);
    if (owner) chownSync(dir, owner.uid, owner.gid);
    return dir;
  }

  /** Stops a process by PID: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(proc: Proc, graceMs = 3000): Promise<void> {
    if (!this.procs.has(proc.pid)) return;
    try {
      process.kill(proc.pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([proc.exited, timer])) === 'timeout') {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
      await proc.exited;
    }
  }

  /** Names of every namespace this run made (from the system, not from memory). */
  namespaces(): string[] {
    return listHarnessNamespaces()
      .filter((n) => n.runId === this.runId && n.pid === process.pid)
      .map((n) => n.ns);
  }

  /** Graceful teardown for afterAll: processes by PID, then every namespace. Idempotent. */
  async teardown(): Promise<void> {
    if (this.torn) return;
    await Promise.all([...this.procs.values()].map(({ proc }) => this.stop(proc)));
    this.teardownSync();
  }

  /** Synchronous teardown (also the 'exit' hook): SIGKILL by PID, then namespaces. Idempotent. */
  teardownSync(): void {
    if (this.torn) return;
    this.torn = true;
    for (const pid of this.procs.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    this.procs.clear();
    this.clients.clear();
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    for (const ns of [...this.pods.map((p) => p.ns), this.bridgeNs, ...this.namespaces()])
      destroyNamespace(ns);
    process.off('exit', this.exitHook);
  }
}
