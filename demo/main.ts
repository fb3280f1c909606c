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
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import {
  ADMIN_PATHS,
  DEFAULT_TRUST_DOMAIN,
  ENV,
  INJECTOR_ENV,
  HEALTH_PATHS,
  METRICS,
  METRICS_PATH,
  OTEL_ENV,
  PORTS,
  PROXY_GID,
  PROXY_UID,
  TUNNEL_ALPN,
} from '@remora/proxy/contract';
import { SPAN_KIND, formatTraceTree } from './otlp.js';
import { renderTraceSvg } from './trace-svg.js';
import type { DecodedSpan } from './otlp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = {
  proxy: join(ROOT, 'proxy/dist/bin/remora-proxy.js'),
  init: join(ROOT, 'proxy/dist/bin/remora-init.js'),
  app: join(ROOT, 'demo/dist/app.js'),
  client: join(ROOT, 'demo/dist/client.js'),
  collector: join(ROOT, 'demo/dist/collector.js'),
  injector: join(ROOT, 'injector/dist/bin/remora-injector.js'),
  /** The injector's own root-CA generator (the demo makes the root the CA then serves from). */
  caRoot: join(ROOT, 'injector/dist/ca/root.js'),
};
/** A made-up ClusterIP:port for service B in the mesh part: only A's discovery file knows it. */
const MESH_SERVICE = '127.0.0.250:80';
const MESH_NAMESPACE = 'demo';
/** The collector's port in namespaces mode (the OTLP/HTTP default). */
const COLLECTOR_PORT = 4318;
/** Pause between two requests of the steady client during the kill and the upgrade. */
const STEADY_GAP_MS = 50;
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
  /** Called after new stdout lines arrived. */
  readonly onLines: Set<() => void>;
  stderr: string;
}

/** Owns every process and namespace the demo creates, and removes them all in cleanup(). */
class Stage {
  readonly #children = new Set<Child>();
  readonly #namespaces: string[] = [];
  readonly #dirs: string[] = [];

  /** A private directory (for the admin token), removed in cleanup. */
  tempDir(owner?: number): string {
    const dir = mkdtempSync(join(tmpdir(), 'remora-demo-'));
    this.#dirs.push(dir);
    if (owner !== undefined) chownSync(dir, owner, owner);
    return dir;
  }

  #removeDirs(done: string[]): void {
    for (const dir of this.#dirs.splice(0)) {
      rmSync(dir, { recursive: true, force: true });
      done.push(`dir ${dir}`);
    }
  }

  start(name: string, argv: readonly string[], env?: NodeJS.ProcessEnv): Child {
    const [cmd, ...args] = argv;
    const proc = spawn(cmd ?? 'false', args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const child: Child = {
      name,
      proc,
      lines: [],
      onLines: new Set(),
      stderr: '',
      exited: new Promise((resolve) => proc.once('close', () => resolve())),
    };
    let partial = '';
    proc.stdout?.on('data', (c: Buffer) => {
      const parts = (partial + c.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      child.lines.push(...parts);
      if (parts.length > 0) for (const w of child.onLines) w();
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
    this.#removeDirs([]);
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
    this.#removeDirs(done);
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

/**
 * Ports handed out in this run. They are picked below Linux's ephemeral range (32768-60999 by
 * default): a port that `listen(0)` finds free is an ephemeral one, and between the check and the
 * child's bind any outgoing connection on the machine may take it (seen in CI as EADDRINUSE when
 * the demo ran beside the test suite's traffic). Outgoing connections never take these.
 */
const handedOut = new Set<number>();
const LOW_PORT_FIRST = 20000;
const LOW_PORT_COUNT = 12000;

function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW_PORT_FIRST + Math.floor(Math.random() * LOW_PORT_COUNT);
    if (handedOut.has(port)) continue;
    if (await portIsFree(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${LOW_PORT_FIRST}-${LOW_PORT_FIRST + LOW_PORT_COUNT - 1}`);
}

/**
 * Resolves once `pred` holds for the child's stdout lines; rejects after `ms` or when the
 * child exits first.
 */
function waitForLines(
  child: Child,
  what: string,
  pred: (lines: readonly string[]) => boolean,
  ms: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      child.onLines.delete(check);
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      if (pred(child.lines)) done();
    };
    const timer = setTimeout(
      () =>
        done(
          new Error(
            `${what}: not seen within ${ms} ms (${child.name}: ${child.stderr.trim() || 'no stderr'})`,
          ),
        ),
      ms,
    );
    child.onLines.add(check);
    void child.exited.then(() => {
      if (!pred(child.lines)) done(new Error(`${what}: ${child.name} exited first: ${child.stderr.trim()}`));
    });
    check();
  });
}

/** How to reach the app, the proxy's health, metrics and admin, and where the client runs. */
interface Setup {
  readonly appUrl: string;
  readonly readyUrl: string;
  readonly metricsUrl: string;
  /** The supervisor's admin listener, reachable only from the pod's loopback. */
  readonly adminUrl: string;
  /** Prefix that runs a command where the client lives (a namespace, or nothing). */
  readonly clientPrefix: readonly string[];
  /** Prefix that runs a command on the pod's loopback, as the proxy's user. */
  readonly adminPrefix: readonly string[];
  /** REMORA_ADMIN_TOKEN_FILE as the demo set it: the proxy writes the token there at start. */
  readonly tokenFile: string;
  readonly proxy: Child;
  /** The OTLP/HTTP receiver the proxy exports its spans to (JSON lines, one per span). */
  readonly collector: Child;
  readonly picture: string;
}

/** Starts the collector and waits until it listens, so the proxy's first export finds it. */
async function startCollector(
  stage: Stage,
  prefix: readonly string[],
  host: string,
  port: number,
): Promise<Child> {
  const collector = stage.start('otlp-collector', [
    ...prefix,
    process.execPath,
    BIN.collector,
    host,
    String(port),
  ]);
  await waitForLines(
    collector,
    'the OTLP collector listening',
    (l) => l.some((x) => x.includes('"listening"')),
    10_000,
  );
  return collector;
}

/** What the proxy needs besides its ports: tracing at 100 % to the collector, the token file. */
function proxyEnv(otlpEndpoint: string, tokenFile: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    [ENV.logLevel]: 'info',
    [ENV.adminTokenFile]: tokenFile,
    [OTEL_ENV.endpoint]: otlpEndpoint,
    [OTEL_ENV.sampler]: 'always_on',
    [OTEL_ENV.serviceName]: 'demo-app',
    // Export within 200 ms of a span ending rather than the default 5 s: the demo waits for it.
    [OTEL_ENV.bspScheduleDelay]: '200',
  };
}

async function explicitSetup(stage: Stage): Promise<Setup> {
  const [app, inbound, outbound, health, metrics, admin, otlp] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  stage.start('app', [process.execPath, BIN.app, '127.0.0.1', String(app)]);
  const collector = await startCollector(stage, [], '127.0.0.1', otlp);
  const tokenFile = join(stage.tempDir(), 'admin-token');
  const proxy = stage.start('remora-proxy', [process.execPath, BIN.proxy], {
    ...proxyEnv(`http://127.0.0.1:${otlp}`, tokenFile),
    [ENV.inboundPort]: String(inbound),
    [ENV.outboundPort]: String(outbound),
    [ENV.healthPort]: String(health),
    [ENV.metricsPort]: String(metrics),
    [ENV.adminPort]: String(admin),
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundTarget]: `127.0.0.1:${app}`,
  });
  return {
    appUrl: `http://127.0.0.1:${inbound}/`,
    readyUrl: `http://127.0.0.1:${health}${HEALTH_PATHS.ready}`,
    metricsUrl: `http://127.0.0.1:${metrics}${METRICS_PATH}`,
    adminUrl: `http://127.0.0.1:${admin}`,
    clientPrefix: [],
    adminPrefix: [],
    tokenFile,
    proxy,
    collector,
    picture: [
      `  client ──▶ remora-proxy 127.0.0.1:${inbound} (inbound, ${ENV.inboundTarget}=127.0.0.1:${app}) ──▶ app 127.0.0.1:${app}`,
      `  the client calls the proxy's port on purpose: without root there is no capture`,
      `  remora-proxy ──OTLP/HTTP──▶ collector 127.0.0.1:${otlp} (in this demo); admin 127.0.0.1:${admin}, token in ${tokenFile}`,
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
  const inCli = ['ip', 'netns', 'exec', cli];
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
  // The collector stands in for a cluster's OpenTelemetry collector: outside the pod. The proxy's
  // own traffic (UID 1337) is exempt from capture, so its exports go straight there.
  const collector = await startCollector(stage, inCli, cliIp, COLLECTOR_PORT);
  const tokenFile = join(stage.tempDir(PROXY_UID), 'admin-token');
  const proxy = stage.start(
    'remora-proxy',
    [...inPod, ...as(PROXY_UID, PROXY_GID), process.execPath, BIN.proxy],
    {
      ...proxyEnv(`http://${cliIp}:${COLLECTOR_PORT}`, tokenFile),
      [ENV.podIp]: podIp,
    },
  );
  return {
    appUrl: `http://${podIp}:${APP_PORT}/`,
    readyUrl: `http://${podIp}:${PORTS.health}${HEALTH_PATHS.ready}`,
    metricsUrl: `http://${podIp}:${PORTS.metrics}${METRICS_PATH}`,
    adminUrl: `http://127.0.0.1:${PORTS.admin}`,
    clientPrefix: inCli,
    // The admin API listens on the pod's loopback only; called as the proxy's user, whose
    // traffic the capture rules leave alone and who can read the 0600 token file.
    adminPrefix: [...inPod, ...as(PROXY_UID, PROXY_GID)],
    tokenFile,
    proxy,
    collector,
    picture: [
      `  netns ${cli} (${cliIp})  ──veth──▶  netns ${pod} (${podIp})`,
      `  client calls http://${podIp}:${APP_PORT}/ ─ iptables (remora-init) ─▶ remora-proxy :${PORTS.inbound} (UID/GID ${PROXY_UID})`,
      `     ─▶ app 127.0.0.1:${APP_PORT} (UID ${APP_UID}); the client does not know a proxy exists`,
      `  remora-init wrote ${rules.length} nat rules in the pod namespace (iptables-save -t nat), e.g.`,
      ...rules.filter((l) => /REDIRECT/.test(l)).map((l) => `    ${l}`),
      `  remora-proxy ──OTLP/HTTP──▶ collector ${cliIp}:${COLLECTOR_PORT} (client namespace); admin 127.0.0.1:${PORTS.admin} in the pod, token in ${tokenFile}`,
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

type Run = (command: string, ...args: string[]) => Promise<string[]>;

/** The collector's JSON lines back into spans (times were written as decimal strings). */
function collectedSpans(collector: Child): DecodedSpan[] {
  return collector.lines
    .filter((l) => l.startsWith('{"traceId"'))
    .map((l) => {
      const s = JSON.parse(l) as DecodedSpan & { startTimeUnixNano: string; endTimeUnixNano: string };
      return {
        ...s,
        startTimeUnixNano: BigInt(s.startTimeUnixNano),
        endTimeUnixNano: BigInt(s.endTimeUnixNano),
      };
    });
}

/**
 * One request with a W3C traceparent (a trace the "caller" started, sampled), then the spans the
 * proxy exported for it as a tree. Returns whether the proxy's server span arrived.
 */
async function showTrace(setup: Setup, client: Run): Promise<boolean> {
  const traceId = randomBytes(16).toString('hex');
  const callerSpan = randomBytes(8).toString('hex');
  const traceparent = `00-${traceId}-${callerSpan}-01`;
  const url = new URL('/trace', setup.appUrl).href;
  const [answer] = await client('traced', url, traceparent);
  const { status, response } = JSON.parse(answer ?? '{}') as { status?: number; response?: string };
  console.log(`  GET  /trace with traceparent ${traceparent} → ${String(status)}`);
  const isServer = (x: DecodedSpan): boolean => x.traceId === traceId && x.kind === SPAN_KIND.server;
  try {
    await waitForLines(
      setup.collector,
      'the server span',
      () => collectedSpans(setup.collector).some(isServer),
      15_000,
    );
  } catch (e) {
    console.log(`  no server span for trace ${traceId} reached the collector: ${(e as Error).message}`);
    return false;
  }
  const spans = collectedSpans(setup.collector);
  console.log(`  trace tree (${spans.length} spans received in all; those of this trace):`);
  for (const line of formatTraceTree(spans, traceId).split('\n')) console.log(`    ${line}`);
  const server = spans.find(isServer);
  if (server !== undefined) {
    const a = server.attributes;
    console.log(
      `  server span ${server.spanId}: kind server, parent ${server.parentSpanId}` +
        `${server.parentSpanId === callerSpan ? ' = the caller span in the traceparent' : ''}, ` +
        `${String(a['remora.direction'])}, ${String(a['http.request.method'])} ${String(a['url.path'])} → ${String(a['http.response.status_code'])}, ` +
        `peer ${String(a['network.peer.address'])}, service.name ${String(server.resource['service.name'])}`,
    );
    const seen = (JSON.parse(response ?? '{}') as { traceparent?: string }).traceparent ?? '(none)';
    console.log(
      `  the app received traceparent ${seen}` +
        `${seen.split('-')[2] === server.spanId ? ': parent-id = the server span, so spans the app makes are its children' : ''}`,
    );
  }
  return server !== undefined;
}

interface Steady {
  start: number;
  end: number;
  status?: number;
  error?: string;
}

interface EngineView {
  generation: number | null;
  serving: string;
  engines: { generation: number; pid: number; role: string; state: string }[];
}

interface SupervisorResult {
  sent: number;
  failed: number;
  refused: number;
}

/**
 * Steady traffic through the proxy while the engine is killed with SIGKILL and then upgraded in
 * place with POST /upgrade. The kill is sent in a pause between two requests: a request in flight
 * on a killed engine is reset by the kernel (docs/supervisor.md, limits); what the demo shows is
 * that connections arriving while no engine runs wait and are served, none refused.
 */
async function killAndUpgrade(stage: Stage, setup: Setup, admin: Run): Promise<SupervisorResult> {
  const view = async (): Promise<EngineView> =>
    JSON.parse((await admin('get', `${setup.adminUrl}${ADMIN_PATHS.config}`)).join('\n')) as EngineView;
  const steady = stage.start('client steady', [
    ...setup.clientPrefix,
    process.execPath,
    BIN.client,
    'steady',
    setup.appUrl,
    String(STEADY_GAP_MS),
    '45',
  ]);
  const results = (): Steady[] =>
    steady.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Steady);
  await waitForLines(steady, 'steady traffic', () => results().length >= 10, 15_000);
  const before = await view();
  const engine = before.engines.find((e) => e.role === 'active');
  if (engine === undefined) throw new Error(`no active engine in ${JSON.stringify(before)}`);
  console.log(
    `  steady client: one GET every ${STEADY_GAP_MS} ms, a new connection each; ${results().length} answered so far`,
  );
  console.log(
    `  engine before: generation ${String(before.generation)}, pid ${engine.pid} (from GET ${ADMIN_PATHS.config})`,
  );
  // Right after an answer, so the kill lands in the pause, not on a request in flight: an answer
  // noticed late (a busy machine) is let go and the next one waited for.
  const fresh = (l: readonly string[]): boolean => {
    const last = l.findLast((x) => x.startsWith('{'));
    return last !== undefined && Date.now() - (JSON.parse(last) as Steady).end < STEADY_GAP_MS / 3;
  };
  for (let tries = 0; ; tries++) {
    const seen = results().length;
    await waitForLines(
      steady,
      'an answer to kill after',
      (l) => l.filter((x) => x.startsWith('{')).length > seen,
      5_000,
    );
    if (fresh(steady.lines)) break;
    if (tries === 100) throw new Error('no answer was noticed within a third of the pause: machine too busy');
  }
  kill(engine.pid, 'SIGKILL');
  const killedAt = Date.now();
  console.log(`  kill -9 ${engine.pid} (engine generation ${String(before.generation)})`);
  const servedAfter = (): Steady | undefined =>
    results().find((r) => r.start >= killedAt && r.status !== undefined);
  await waitForLines(steady, 'an answer after the kill', () => servedAfter() !== undefined, 20_000);
  const back = servedAfter();
  console.log(
    `  serving again ${String((back?.end ?? killedAt) - killedAt)} ms after the kill (the first request sent after it was answered ${String(back?.status)})`,
  );
  let restarted = await view();
  const deadline = Date.now() + 20_000;
  while (
    (restarted.generation === before.generation || restarted.serving !== 'engine') &&
    Date.now() < deadline
  ) {
    await new Promise((r) => setTimeout(r, 100));
    restarted = await view();
  }
  console.log(`  engine after the restart: generation ${String(restarted.generation)}`);
  const upgraded = JSON.parse(
    (await admin('upgrade', `${setup.adminUrl}${ADMIN_PATHS.upgrade}`, setup.tokenFile)).join('\n'),
  ) as {
    ok?: boolean;
    durationMs?: number;
    running?: { generation?: number };
    previous?: { generation?: number };
  };
  console.log(
    `  POST ${ADMIN_PATHS.upgrade} (Authorization: Bearer <${ENV.adminTokenFile}>) → ok ${String(upgraded.ok)}, ` +
      `generation ${String(upgraded.previous?.generation)} → ${String(upgraded.running?.generation)} in ${String(upgraded.durationMs)} ms`,
  );
  const afterUpgrade = results().length;
  await waitForLines(
    steady,
    'traffic after the upgrade',
    () => results().length >= afterUpgrade + 10,
    15_000,
  );
  kill(steady.proc.pid ?? -1, 'SIGTERM');
  await steady.exited;
  const after = await view();
  const all = results();
  const failed = all.filter((r) => r.status !== 200);
  const refused = all.filter((r) => r.error === 'ECONNREFUSED');
  console.log(
    `  engine generation before ${String(before.generation)}, after the kill ${String(restarted.generation)}, after the upgrade ${String(after.generation)}`,
  );
  console.log(
    `  requests sent ${all.length}, failed ${failed.length}, refused connections ${refused.length}` +
      (failed.length > 0
        ? `; failures: ${[...new Set(failed.map((r) => r.error ?? String(r.status)))].join(', ')}`
        : ''),
  );
  return { sent: all.length, failed: failed.length, refused: refused.length };
}

interface MeshPorts {
  inbound: number;
  outbound: number;
  tunnel: number;
  health: number;
  metrics: number;
  admin: number;
}

async function meshPorts(): Promise<MeshPorts> {
  return {
    inbound: await freePort(),
    outbound: await freePort(),
    tunnel: await freePort(),
    health: await freePort(),
    metrics: await freePort(),
    admin: await freePort(),
  };
}

/**
 * Connects to a tunnel port without a client certificate: the server shows its certificate in
 * the TLS 1.3 handshake, then must refuse the connection. Returns the URI SAN it showed and what
 * happened next.
 */
function probeTunnel(port: number, caPem: string, target: number): Promise<{ san: string; outcome: string }> {
  return new Promise((resolve) => {
    let san = '(no certificate)';
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ca: caPem,
      ALPNProtocols: [TUNNEL_ALPN],
      // We print the name instead of checking it: the chain is still verified against the root.
      checkServerIdentity: () => undefined,
    });
    const done = (outcome: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ san, outcome });
    };
    const timer = setTimeout(() => done('no answer within 5 s'), 5000);
    s.once('secureConnect', () => {
      san = s.getPeerCertificate().subjectaltname ?? '(none)';
      s.write(`CONNECT 127.0.0.1:${target} HTTP/1.1\r\n\r\n`);
    });
    s.once('data', (d: Buffer) => done(`answered ${JSON.stringify(d.toString('latin1').split('\r\n')[0])}`));
    s.once('error', (e: NodeJS.ErrnoException) => done(`refused (${e.code ?? e.message})`));
    s.once('close', () => done('refused (connection closed without an answer)'));
  });
}

/**
 * Two meshed sidecars on loopback: A's app calls service B's made-up ClusterIP; A's discovery
 * file says B is meshed with identity …/sa/items, so A opens an mTLS tunnel to B's tunnel port
 * with a certificate from the demo's CA (remora-injector, static token file). Prints the
 * identity each side saw. Returns whether both identities were the expected ones.
 */
async function meshPart(stage: Stage, local: Run): Promise<boolean> {
  const dir = stage.tempDir();
  const { newRoot } = (await import(BIN.caRoot)) as {
    newRoot: (trustDomain: string) => { certPem: string; privateKey: KeyObject };
  };
  const root = newRoot(DEFAULT_TRUST_DOMAIN);
  writeFileSync(join(dir, 'ca.crt'), root.certPem);
  writeFileSync(join(dir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  const identity = (sa: string): string => `spiffe://${DEFAULT_TRUST_DOMAIN}/ns/${MESH_NAMESPACE}/sa/${sa}`;
  const sides = {
    a: { sa: 'orders', token: randomBytes(24).toString('hex') },
    b: { sa: 'items', token: randomBytes(24).toString('hex') },
  };
  writeFileSync(
    join(dir, 'tokens.json'),
    JSON.stringify({
      [sides.a.token]: `${MESH_NAMESPACE}/${sides.a.sa}`,
      [sides.b.token]: `${MESH_NAMESPACE}/${sides.b.sa}`,
    }),
    { mode: 0o600 },
  );
  for (const side of Object.values(sides))
    writeFileSync(join(dir, `${side.sa}.token`), side.token, { mode: 0o600 });
  const [appB, caPort, webhookPort, otlp] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const a = await meshPorts();
  const b = await meshPorts();
  writeFileSync(
    join(dir, 'discovery.json'),
    JSON.stringify({
      services: {
        [MESH_SERVICE]: {
          endpoints: [
            {
              ip: '127.0.0.1',
              port: appB,
              meshed: true,
              identity: identity(sides.b.sa),
              tunnelPort: b.tunnel,
            },
          ],
        },
      },
    }),
  );
  const collector = await startCollector(stage, [], '127.0.0.1', otlp);
  stage.start(
    'remora-injector-ca',
    [process.execPath, BIN.injector, '--no-kubernetes', '--host', '127.0.0.1'],
    {
      ...process.env,
      [INJECTOR_ENV.caDir]: dir,
      [INJECTOR_ENV.staticTokens]: join(dir, 'tokens.json'),
      [INJECTOR_ENV.caPort]: String(caPort),
      [INJECTOR_ENV.port]: String(webhookPort),
      [INJECTOR_ENV.logLevel]: 'warn',
    },
  );
  stage.start('app-b', [process.execPath, BIN.app, '127.0.0.1', String(appB)]);
  const sidecar = (name: string, p: MeshPorts, sa: string, extra: NodeJS.ProcessEnv): Child =>
    stage.start(name, [process.execPath, BIN.proxy], {
      ...proxyEnv(`http://127.0.0.1:${otlp}`, join(dir, `${name}.admin-token`)),
      [OTEL_ENV.serviceName]: sa,
      [ENV.logLevel]: 'warn',
      [ENV.bindHost]: '127.0.0.1',
      [ENV.inboundPort]: String(p.inbound),
      [ENV.outboundPort]: String(p.outbound),
      [ENV.tunnelPort]: String(p.tunnel),
      [ENV.healthPort]: String(p.health),
      [ENV.metricsPort]: String(p.metrics),
      [ENV.adminPort]: String(p.admin),
      [ENV.caAddress]: `127.0.0.1:${caPort}`,
      [ENV.caBundleFile]: join(dir, 'ca.crt'),
      [ENV.tokenFile]: join(dir, `${sa}.token`),
      ...extra,
    });
  const proxyB = sidecar('remora-proxy-b', b, sides.b.sa, { [ENV.inboundTarget]: `127.0.0.1:${appB}` });
  const proxyA = sidecar('remora-proxy-a', a, sides.a.sa, {
    [ENV.outboundTarget]: MESH_SERVICE,
    [ENV.discoveryFile]: join(dir, 'discovery.json'),
  });
  console.log(
    `  CA: remora-injector --no-kubernetes on 127.0.0.1:${caPort}, root made by the demo, static tokens:`,
  );
  console.log(`      ${MESH_NAMESPACE}/${sides.a.sa} (A), ${MESH_NAMESPACE}/${sides.b.sa} (B)`);
  console.log(
    `  client ──▶ A ${MESH_SERVICE} (= A's outbound 127.0.0.1:${a.outbound}) ─discovery: meshed ${identity(sides.b.sa)}─▶`,
  );
  console.log(`     mTLS to B's tunnel 127.0.0.1:${b.tunnel} ──▶ app B 127.0.0.1:${appB}`);
  for (const [name, p, proc] of [
    ['A', a, proxyA],
    ['B', b, proxyB],
  ] as const) {
    try {
      await local('wait', `http://127.0.0.1:${p.health}${HEALTH_PATHS.ready}`, '30');
    } catch (e) {
      throw new Error(
        `sidecar ${name} not ready (certificate from the CA?): ${(e as Error).message}\n${proc.stderr}`,
      );
    }
  }
  const traceId = randomBytes(16).toString('hex');
  const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
  const [answer] = await local('traced', `http://127.0.0.1:${a.outbound}/trace`, traceparent);
  const { status, response } = JSON.parse(answer ?? '{}') as { status?: number; response?: string };
  const seenByApp = (JSON.parse(response ?? '{}') as { peerIdentity?: string }).peerIdentity ?? '(none)';
  console.log(`  GET  /trace through A → ${String(status)}`);
  const spansOf = (): DecodedSpan[] => collectedSpans(collector).filter((x) => x.traceId === traceId);
  const server = (): DecodedSpan | undefined => spansOf().find((x) => x.kind === SPAN_KIND.server);
  const clientSpan = (): DecodedSpan | undefined => spansOf().find((x) => x.kind === SPAN_KIND.client);
  await waitForLines(
    collector,
    'the mesh spans',
    () => server() !== undefined && clientSpan() !== undefined,
    15_000,
  ).catch((e: unknown) => console.log(`  ${(e as Error).message}`));
  for (const line of formatTraceTree(spansOf(), traceId).split('\n')) console.log(`    ${line}`);
  // The same trace as a picture (trace-svg.ts); kept after the demo, for a browser.
  const picture = join(tmpdir(), `remora-trace-${traceId.slice(0, 8)}.svg`);
  writeFileSync(picture, renderTraceSvg(spansOf(), traceId, 'GET /trace: A → B over the mTLS tunnel'));
  console.log(`  the trace as a picture:   ${picture}`);
  const sourceIdentity = String(server()?.attributes['remora.source.identity'] ?? '(none)');
  console.log(`  B saw the caller as:      ${sourceIdentity} (server span, remora.source.identity)`);
  console.log(`  app B received:           ${seenByApp} (the x-remora-peer-identity header)`);
  console.log(
    `  A expected B to be:       ${identity(sides.b.sa)} (discovery); A's tunnel client checks B's certificate URI SAN against it before sending a byte`,
  );
  const probe = await probeTunnel(b.tunnel, root.certPem, appB);
  console.log(`  B's certificate shows:    ${probe.san} (the demo connecting to B's tunnel port itself)`);
  console.log(`  without a client certificate B ${probe.outcome}`);
  const failures = (await local('get', `http://127.0.0.1:${b.metrics}${METRICS_PATH}`)).filter((l) =>
    l.startsWith(`${METRICS.tlsHandshakeFailures}{`),
  );
  for (const l of failures) console.log(`  B: ${l.replace(/,?\w+="unknown"/g, '').replace('{,', '{')}`);
  return (
    sourceIdentity === identity(sides.a.sa) &&
    seenByApp === identity(sides.a.sa) &&
    probe.san === `URI:${identity(sides.b.sa)}` &&
    probe.outcome.startsWith('refused')
  );
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
    const client: Run = (command, ...args) =>
      stage.run(`client ${command}`, [...setup.clientPrefix, process.execPath, BIN.client, command, ...args]);
    const admin: Run = (command, ...args) =>
      stage.run(`admin ${command}`, [...setup.adminPrefix, process.execPath, BIN.client, command, ...args]);
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

    heading(`trace: one request with a traceparent, the spans remora-proxy exported (OTLP/HTTP, 100 %)`);
    const traced = await showTrace(setup, client);

    heading('supervisor: kill -9 the engine under steady traffic, then POST /upgrade');
    const sup = await killAndUpgrade(stage, setup, admin);

    heading(
      mode === 'namespaces'
        ? 'mesh: A calls B over mTLS (on loopback in explicit mode: the namespaces above make one pod)'
        : 'mesh: A calls B over mTLS through two sidecars on loopback',
    );
    const local: Run = (command, ...args) =>
      stage.run(`client ${command}`, [process.execPath, BIN.client, command, ...args]);
    const meshed = await meshPart(stage, local);

    heading('summary');
    console.log(
      `  mode: ${mode}; ${sent.length} requests sent, remora-proxy counted ${counted} (${METRICS.requestsTotal})`,
    );
    console.log(
      `  trace: ${traced ? 'the server span of the traced request reached the collector' : 'NO server span'}`,
    );
    console.log(
      `  supervisor: ${sup.sent} requests across a kill -9 and an upgrade, ${sup.failed} failed, ${sup.refused} refused`,
    );
    console.log(
      `  mesh: ${meshed ? 'each side saw the identity the CA gave the other' : 'identities NOT as expected'}`,
    );
    const problems = [
      ...(counted < sent.length ? ['the proxy did not see every request'] : []),
      ...(traced ? [] : ['no trace']),
      ...(sup.failed > 0 || sup.refused > 0 ? ['requests failed across the kill or the upgrade'] : []),
      ...(meshed ? [] : ['mesh identities']),
    ];
    if (problems.length > 0) {
      console.log(`  FAILED: ${problems.join('; ')}`);
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
