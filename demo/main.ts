#!/usr/bin/env node
/**
 * `npm run demo`: a small app behind remora-proxy, some traffic, then the metrics and the
 * access log the proxy produced. Two modes:
 *  - namespaces (root, `ip netns` available, remora-init built): a "pod" network namespace
 *    with the app, remora-init's capture rules and the proxy as UID/GID 1337, and a "client"
 *    namespace that calls the pod's IP; the client does not know a proxy exists.
 *  - explicit (otherwise): everything on loopback, the client calls the proxy's inbound port,
 *    which forwards to REMORA_INBOUND_TARGET.
 * Everything it starts is stopped by PID and every namespace it made is deleted, also on Ctrl-C.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV, METRICS, PORTS, PROXY_GID, PROXY_UID } from '@remora/proxy/contract';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = {
  proxy: join(ROOT, 'proxy/dist/bin/remora-proxy.js'),
  init: join(ROOT, 'proxy/dist/bin/remora-init.js'),
  app: join(ROOT, 'demo/dist/app.js'),
  client: join(ROOT, 'demo/dist/client.js'),
};
/** The app's port inside the pod; any port works, the capture rules take all of them. */
const APP_PORT = 8080;
/** The app runs as an ordinary user: only the proxy's UID/GID is exempt from capture. */
const APP_UID = 1000;

type Mode = 'explicit' | 'namespaces';

const USAGE = `usage: npm run demo -- [--mode=auto|explicit|namespaces]
  auto (default): namespaces when running as root with ip netns, iptables and remora-init; else explicit`;

class UsageError extends Error {}

/** Set on Ctrl-C: the errors of the processes we are stopping are expected then, not news. */
let interrupted = false;

function parseMode(argv: readonly string[]): Mode | 'auto' | 'help' {
  let mode: Mode | 'auto' | 'help' = 'auto';
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') return 'help';
    const m = /^--mode=(auto|explicit|namespaces)$/.exec(arg);
    if (m?.[1] === undefined) throw new UsageError(`unknown argument "${arg}"\n${USAGE}`);
    mode = m[1] as Mode | 'auto';
  }
  return mode;
}

function commandWorks(cmd: string, args: readonly string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What the namespaces mode needs that this machine lacks (empty: it can run). */
function namespaceBlockers(): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0) out.push('not root');
  if (!commandWorks('ip', ['netns', 'list'])) out.push('`ip netns` unavailable');
  if (!commandWorks('sh', ['-c', 'command -v iptables-restore'])) out.push('iptables-restore missing');
  if (!commandWorks('sh', ['-c', 'command -v setpriv'])) out.push('setpriv missing');
  if (!existsSync(BIN.init)) out.push(`${BIN.init} not built`);
  return out;
}

interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  readonly lines: string[];
  stderr: string;
}

/** Owns every process and namespace the demo creates, and removes them all in cleanup(). */
class Stage {
  readonly #children = new Set<Child>();
  readonly #namespaces: string[] = [];

  start(name: string, argv: readonly string[], env?: NodeJS.ProcessEnv): Child {
    const [cmd, ...args] = argv;
    const proc = spawn(cmd ?? 'false', args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const child: Child = {
      name,
      proc,
      lines: [],
      stderr: '',
      exited: new Promise((resolve) => proc.once('close', () => resolve())),
    };
    let partial = '';
    proc.stdout?.on('data', (c: Buffer) => {
      const parts = (partial + c.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      child.lines.push(...parts);
    });
    proc.stderr?.on('data', (c: Buffer) => (child.stderr = (child.stderr + c.toString('utf8')).slice(-4000)));
    proc.once('error', (e) => (child.stderr += `\n${e.message}`));
    this.#children.add(child);
    void child.exited.then(() => this.#children.delete(child));
    return child;
  }

  /** Runs a short command to completion; throws with its stderr unless it exits 0. */
  async run(name: string, argv: readonly string[]): Promise<string[]> {
    const child = this.start(name, argv);
    await child.exited;
    if (child.proc.exitCode !== 0) {
      throw new Error(
        `${name} failed (exit ${String(child.proc.exitCode ?? child.proc.signalCode)}): ${child.stderr.trim()}`,
      );
    }
    return child.lines;
  }

  ip(args: readonly string[]): void {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  addNamespace(name: string): void {
    this.ip(['netns', 'add', name]);
    this.#namespaces.push(name);
  }

  /**
   * Last resort from process.on('exit') (an uncaught error, a closed stdout): synchronous,
   * so it kills rather than asks, and deletes the namespaces.
   */
  cleanupNow(): void {
    for (const c of this.#children) if (c.proc.pid !== undefined) kill(c.proc.pid, 'SIGKILL');
    for (const ns of this.#namespaces.splice(0)) {
      try {
        this.ip(['netns', 'del', ns]);
      } catch {
        process.stderr.write(`could not delete netns ${ns}: remove it with \`ip netns del ${ns}\`\n`);
      }
    }
  }

  async cleanup(): Promise<string[]> {
    const done: string[] = [];
    await Promise.all(
      [...this.#children].map(async (c) => {
        const pid = c.proc.pid;
        if (pid === undefined) return;
        kill(pid, 'SIGTERM');
        const timer = setTimeout(() => kill(pid, 'SIGKILL'), 2000);
        await c.exited;
        clearTimeout(timer);
        done.push(`${c.name} (pid ${pid})`);
      }),
    );
    // Deleting a namespace takes its veth end, addresses and iptables rules with it.
    for (const ns of this.#namespaces.splice(0)) {
      try {
        this.ip(['netns', 'del', ns]);
        done.push(`netns ${ns}`);
      } catch (e) {
        process.stderr.write(`could not delete netns ${ns}: ${(e as Error).message}\n`);
      }
    }
    return done;
  }
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const addr = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no free port');
  return addr.port;
}

/** How to reach the app, the proxy's health and metrics, and where the client runs. */
interface Setup {
  readonly appUrl: string;
  readonly readyUrl: string;
  readonly metricsUrl: string;
  /** Prefix that runs a command where the client lives (a namespace, or nothing). */
  readonly clientPrefix: readonly string[];
  readonly proxy: Child;
  readonly picture: string;
}

async function explicitSetup(stage: Stage): Promise<Setup> {
  const [app, inbound, outbound, health, metrics, admin] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  stage.start('app', [process.execPath, BIN.app, '127.0.0.1', String(app)]);
  const proxy = stage.start('remora-proxy', [process.execPath, BIN.proxy], {
    ...process.env,
    [ENV.inboundPort]: String(inbound),
    [ENV.outboundPort]: String(outbound),
    [ENV.healthPort]: String(health),
    [ENV.metricsPort]: String(metrics),
    [ENV.adminPort]: String(admin),
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundTarget]: `127.0.0.1:${app}`,
    [ENV.logLevel]: 'info',
  });
  return {
    appUrl: `http://127.0.0.1:${inbound}/`,
    readyUrl: `http://127.0.0.1:${health}/healthz/ready`,
    metricsUrl: `http://127.0.0.1:${metrics}/metrics`,
    clientPrefix: [],
    proxy,
    picture: [
      `  client ──▶ remora-proxy 127.0.0.1:${inbound} (inbound, ${ENV.inboundTarget}=127.0.0.1:${app}) ──▶ app 127.0.0.1:${app}`,
      `  the client calls the proxy's port on purpose: without root there is no capture`,
    ].join('\n'),
  };
}

async function namespaceSetup(stage: Stage): Promise<Setup> {
  const id = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const pod = `remora-demo-${id}-pod`;
  const cli = `remora-demo-${id}-cli`;
  const net = `10.213.${randomBytes(1)[0] ?? 0}`;
  const podIp = `${net}.2`;
  const cliIp = `${net}.3`;
  stage.addNamespace(pod);
  stage.addNamespace(cli);
  // The veth is created inside the pod namespace with its peer sent straight to the client
  // namespace: the host namespace never sees an interface, an address or a route of ours.
  stage.ip(['-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cli]);
  for (const [ns, ip] of [
    [pod, podIp],
    [cli, cliIp],
  ] as const) {
    stage.ip(['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    stage.ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    stage.ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const inPod = ['ip', 'netns', 'exec', pod];
  const as = (uid: number, gid: number): string[] => [
    'setpriv',
    `--reuid=${uid}`,
    `--regid=${gid}`,
    '--clear-groups',
  ];
  stage.start('app', [
    ...inPod,
    ...as(APP_UID, APP_UID),
    process.execPath,
    BIN.app,
    '0.0.0.0',
    String(APP_PORT),
  ]);
  await stage.run('remora-init', [...inPod, process.execPath, BIN.init]);
  const nat = await stage.run('iptables-save', [...inPod, 'iptables-save', '-t', 'nat']);
  const rules = nat.filter((l) => l.startsWith('-A '));
  const proxy = stage.start(
    'remora-proxy',
    [...inPod, ...as(PROXY_UID, PROXY_GID), process.execPath, BIN.proxy],
    {
      ...process.env,
      [ENV.logLevel]: 'info',
      [ENV.podIp]: podIp,
    },
  );
  return {
    appUrl: `http://${podIp}:${APP_PORT}/`,
    readyUrl: `http://${podIp}:${PORTS.health}/healthz/ready`,
    metricsUrl: `http://${podIp}:${PORTS.metrics}/metrics`,
    clientPrefix: ['ip', 'netns', 'exec', cli],
    proxy,
    picture: [
      `  netns ${cli} (${cliIp})  ──veth──▶  netns ${pod} (${podIp})`,
      `  client calls http://${podIp}:${APP_PORT}/ ─ iptables (remora-init) ─▶ remora-proxy :${PORTS.inbound} (UID/GID ${PROXY_UID})`,
      `     ─▶ app 127.0.0.1:${APP_PORT} (UID ${APP_UID}); the client does not know a proxy exists`,
      `  remora-init wrote ${rules.length} nat rules in the pod namespace (iptables-save -t nat), e.g.`,
      ...rules.filter((l) => /REDIRECT/.test(l)).map((l) => `    ${l}`),
    ].join('\n'),
  };
}

function heading(text: string): void {
  console.log(`\n── ${text} ${'─'.repeat(Math.max(0, 76 - text.length))}`);
}

interface Sent {
  method: string;
  path: string;
  status: number;
  ms: number;
  response: string;
}

function printTraffic(lines: readonly string[]): Sent[] {
  const sent = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Sent);
  for (const s of sent) {
    console.log(
      `  ${s.method.padEnd(5)}${s.path.padEnd(11)}→ ${s.status}  ${s.ms.toFixed(1).padStart(6)} ms  ${s.response.slice(0, 60)}`,
    );
  }
  return sent;
}

/**
 * The remora_ series, without histogram buckets (the _sum and _count say enough here) and
 * without counters still at zero (the paths this demo does not exercise).
 */
function printMetrics(text: string): number {
  const all = text.split('\n').filter((l) => l.startsWith('remora_') && !/_bucket[{ ]/.test(l));
  const value = (l: string): number => Number(l.slice(l.lastIndexOf(' ') + 1));
  const idle = (l: string): boolean => value(l) === 0 && /^remora_\w+_(total|sum|count)[{ ]/.test(l);
  // Outside Kubernetes the workload labels are all "unknown": noise here, so they go.
  const shown = all.filter((l) => !idle(l)).map((l) => l.replace(/,?\w+="unknown"/g, '').replace('{,', '{'));
  const width = Math.min(100, Math.max(...shown.map((l) => l.lastIndexOf(' '))));
  for (const l of shown) {
    console.log(`  ${l.slice(0, l.lastIndexOf(' ')).padEnd(width)} ${Number(value(l).toPrecision(6))}`);
  }
  console.log(
    `  (${all.length - shown.length} counters still at 0 and labels whose value is "unknown" not shown)`,
  );
  // Requests the proxy counted: the proof that the traffic went through it.
  return all
    .filter((l) => l.startsWith(`${METRICS.requestsTotal}{`) || l.startsWith(`${METRICS.requestsTotal} `))
    .reduce((sum, l) => sum + value(l), 0);
}

function printAccessLog(lines: readonly string[]): number {
  const access = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { log?: unknown }).log === 'access';
    } catch {
      return false;
    }
  });
  for (const l of access) console.log(`  ${l}`);
  if (access.length === 0) console.log('  (remora-proxy wrote no access log lines)');
  return access.length;
}

async function main(): Promise<number> {
  const requested = parseMode(process.argv.slice(2));
  if (requested === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (!existsSync(BIN.proxy)) throw new Error(`${BIN.proxy} is not built: run \`npm run build\` first`);
  const blockers = requested === 'explicit' ? ['explicit mode asked for'] : namespaceBlockers();
  if (requested === 'namespaces' && blockers.length > 0) {
    throw new Error(`namespaces mode needs: ${blockers.join(', ')}`);
  }
  const mode: Mode = blockers.length === 0 ? 'namespaces' : 'explicit';
  const t0 = Date.now();
  const stage = new Stage();
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    const done = await stage.cleanup();
    heading('cleanup');
    console.log(`  stopped/removed: ${done.join(', ') || 'nothing left'}`);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    process.stderr.write(`\n${sig}: cleaning up...\n`);
    void cleanup().finally(() => process.exit(130));
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  process.on('exit', () => stage.cleanupNow());
  // `npm run demo | head` closes stdout early: stop printing, still clean up.
  process.stdout.on('error', () => {});
  try {
    console.log(
      mode === 'namespaces'
        ? `Remora demo — mode: NAMESPACES (root: network namespaces + iptables capture by remora-init)`
        : `Remora demo — mode: EXPLICIT on loopback (no capture: ${blockers.join(', ')})`,
    );
    const setup = mode === 'namespaces' ? await namespaceSetup(stage) : await explicitSetup(stage);
    console.log(setup.picture);
    const client = (command: string, url: string): Promise<string[]> =>
      stage.run(`client ${command}`, [...setup.clientPrefix, process.execPath, BIN.client, command, url]);
    try {
      await client('wait', setup.readyUrl);
    } catch (e) {
      throw new Error(`remora-proxy did not become ready: ${(e as Error).message}\n${setup.proxy.stderr}`);
    }

    heading(`traffic: client → ${setup.appUrl}`);
    const sent = printTraffic(await client('traffic', setup.appUrl));

    heading(`metrics: ${setup.metricsUrl} (remora_* series; histogram buckets left out)`);
    const counted = printMetrics((await client('get', setup.metricsUrl)).join('\n'));

    heading('access log: the JSON lines remora-proxy wrote on stdout');
    // pino writes asynchronously: give the last lines a moment to arrive.
    await new Promise((r) => setTimeout(r, 300));
    printAccessLog(setup.proxy.lines);

    heading('summary');
    console.log(
      `  mode: ${mode}; ${sent.length} requests sent, remora-proxy counted ${counted} (${METRICS.requestsTotal})`,
    );
    if (counted < sent.length) {
      console.log('  FAILED: the proxy did not see every request');
      return 1;
    }
    console.log(`  every request went through remora-proxy (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    if (interrupted) return;
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
