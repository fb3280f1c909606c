/**
 * remora-proxy's process entry (DESIGN §1): config, token, sockets, HTTP listeners, first
 * engine, signals. Bad config exits non-zero listing every error before binding anything.
 *   SIGTERM/SIGINT  drain the engines (bounded by REMORA_DRAIN_SECONDS), then exit
 *   SIGHUP          in-place upgrade to the same version (re-reads the config file)
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENV, VERSION } from '../contract.js';
import { ConfigError } from '../errors.js';
import { checkOverrides, parseSupervisorConfig } from './config.js';
import type { SupervisorConfig } from './config.js';
import { UpgradeBusyError } from './errors.js';
import { startServers } from './http.js';
import type { ListenerName } from './ipc.js';
import { BUILTIN_VERSION, Supervisor } from './supervisor.js';
import type { SupervisorOptions } from './supervisor.js';
import type { Target } from './standin.js';
import { inboundDelivery } from '../inbound/target.js';
import { loadPolicyReader } from './guard.js';
import { createSupervisorLogger } from './log.js';
import type { Logger } from './log.js';
import { loadOrCreateToken } from './token.js';
import { startRollout } from './rollout-start.js';
import type { Rollout } from './rollout.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Backlog of every data socket: connections wait here while no engine accepts. */
export const BACKLOG = 4096;
const HEARTBEAT_MS = 1000;
const HEARTBEAT_TIMEOUT_MS = 5000;
const BACKOFF = Object.freeze({ baseMs: 100, maxMs: 5000 });
/** /quitquitquit and a second SIGTERM: how long engines get before the process just exits. */
const QUIT_MS = 1000;

function readConfigFile(env: Env): string | undefined {
  const path = env[ENV.configFile];
  if (path === undefined || path === '') return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `${ENV.configFile}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    ]);
  }
}

const IPV6_TWIN: Readonly<Record<string, string>> = { '0.0.0.0': '::', '127.0.0.1': '::1' };

/** The IPv6 listener beside a default IPv4 one; none for an explicitly chosen bind host. */
function ipv6Twin(
  name: 'inbound6' | 'outbound6' | 'tunnel6',
  host: string,
  port: number,
): { name: ListenerName; host: string; port: number; optional: true }[] {
  const v6 = IPV6_TWIN[host];
  return v6 === undefined ? [] : [{ name, host: v6, port, optional: true }];
}

export function supervisorOptions(
  cfg: SupervisorConfig,
  env: Env,
  fileContents: string | undefined,
  engineEntry: string,
): SupervisorOptions {
  const p = cfg.proxy;
  const targets: Partial<Record<ListenerName, Target>> = {};
  if (p.inboundTarget !== undefined) targets.inbound = p.inboundTarget;
  if (p.outboundTarget !== undefined) targets.outbound = p.outboundTarget;
  return {
    listeners: [
      { name: 'inbound', host: p.inboundHost, port: p.inboundPort },
      { name: 'outbound', host: p.outboundHost, port: p.outboundPort },
      // remora-init captures IPv6 too: the same ports on the IPv6 twin of each default address.
      ...ipv6Twin('inbound6', p.inboundHost, p.inboundPort),
      ...ipv6Twin('outbound6', p.outboundHost, p.outboundPort),
      // The mesh tunnel exists when a CA is configured (mTLS on); held like the others.
      ...(p.caAddress !== undefined
        ? [
            { name: 'tunnel' as const, host: p.tunnelHost, port: p.tunnelPort },
            ...ipv6Twin('tunnel6', p.tunnelHost, p.tunnelPort),
          ]
        : []),
    ],
    targets,
    maxConnections: p.maxConnections,
    delivery: inboundDelivery(p.podIp, p.localhostInboundPorts),
    policy: {
      policyFile: p.policyFile,
      // the engine's policy source when there is no file (policy/setup.ts)
      policyStream: p.policyFile === undefined && p.discoveryAddress !== undefined,
      self: { namespace: p.podNamespace, workload: p.workload },
    },
    failureMode: p.failureMode,
    mtlsMode: p.mtlsMode,
    drainMs: Math.round(p.drainSeconds * 1000),
    engineWaitMs: cfg.engineWaitMs,
    restartGraceMs: cfg.restartGraceMs,
    timings: {
      heartbeatMs: HEARTBEAT_MS,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      readyTimeoutMs: cfg.engineReadyMs,
      backlog: BACKLOG,
    },
    backoff: BACKOFF,
    builtin: { version: BUILTIN_VERSION, entry: engineEntry, env, overrides: {} },
    bundleRoot: cfg.bundleRoot,
    standby: cfg.standby,
    checkOverrides: (config) => checkOverrides(env, fileContents, config),
  };
}

/**
 * Runs the supervisor until a signal or /quitquitquit ends it. `engineEntry` is the builtin
 * engine's file (the bin passes its own build's).
 */
export async function main(engineEntry: string, env: Env = process.env): Promise<void> {
  let cfg: SupervisorConfig;
  let fileContents: string | undefined;
  try {
    fileContents = readConfigFile(env);
    cfg = parseSupervisorConfig(env, fileContents);
    // A bad policy file would fail every engine generation in turn: refuse it here, once. The
    // policy code (and the YAML parser) is loaded only then: most sidecars take their policy
    // from the injector's stream, which only the engine reads.
    const p = cfg.proxy;
    if (p.policyFile !== undefined) {
      const { checkPolicyFile } = await import('../policy/file.js');
      checkPolicyFile(p.policyFile, { namespace: p.podNamespace, workload: p.workload });
      await loadPolicyReader();
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`remora-proxy: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log: Logger = createSupervisorLogger(cfg.proxy.logLevel, {
    component: 'remora-proxy',
    pid: process.pid,
    role: 'supervisor',
  });
  const fatal = (msg: string, err: unknown): never => {
    log.fatal({ err }, msg);
    process.stderr.write(`remora-proxy: ${msg}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  };

  let token: string;
  try {
    let file = cfg.adminTokenFile;
    let t;
    try {
      t = loadOrCreateToken(file);
    } catch (err) {
      // Outside a pod the default directory (an emptyDir in the pod) may not be writable: use a
      // private temporary directory then, and say where. An explicit path never falls back.
      if (env[ENV.adminTokenFile] !== undefined && env[ENV.adminTokenFile] !== '') throw err;
      file = join(mkdtempSync(join(tmpdir(), 'remora-admin-')), 'admin-token');
      t = loadOrCreateToken(file);
      log.warn(
        { event: 'admin_token_fallback', file, reason: (err as Error).message },
        'admin token file moved',
      );
    }
    token = t.token;
    if (t.created) log.info({ event: 'admin_token_created', file }, 'admin token created');
    if (t.warning !== undefined) log.warn({ event: 'admin_token_exposed', file }, t.warning);
  } catch (err) {
    return fatal('cannot set up the admin token', err);
  }

  const supervisor = new Supervisor(supervisorOptions(cfg, env, fileContents, engineEntry), log);
  // set once the listeners are up; read by exit and /config
  const control: { rollout?: Rollout | undefined } = {};
  let exiting = false;
  const exit = (code: number): void => {
    exiting = true;
    control.rollout?.close();
    supervisor.close();
    servers?.close();
    log.flush();
    setTimeout(() => process.exit(code), 50).unref();
  };
  const quit = (): void => {
    if (exiting) return;
    log.info({ event: 'quit' }, 'quitquitquit: exiting');
    setTimeout(() => exit(0), QUIT_MS).unref();
    supervisor.drain(0).then(
      () => exit(0),
      () => exit(0),
    );
  };

  let servers: Awaited<ReturnType<typeof startServers>> | undefined;
  let held;
  try {
    held = await supervisor.start();
    const p = cfg.proxy;
    servers = await startServers(
      {
        health: { host: p.healthHost, port: p.healthPort },
        metrics: { host: p.metricsHost, port: p.metricsPort },
        admin: { host: p.adminHost, port: p.adminPort },
      },
      {
        supervisor,
        token,
        probes: cfg.appProbes,
        log,
        quit,
        quitWithoutToken: cfg.quitWithoutToken,
        extraStatus: () => ({ rollout: control.rollout?.status() ?? null }),
      },
    );
  } catch (err) {
    supervisor.close();
    return fatal('cannot bind the listeners', err);
  }
  log.info(
    {
      event: 'supervisor_listening',
      version: VERSION,
      failureMode: cfg.proxy.failureMode,
      mtlsMode: cfg.proxy.mtlsMode,
      quitWithoutToken: cfg.quitWithoutToken,
      ports: { ...Object.fromEntries(held.map((l) => [l.name, l.port])), ...servers.ports },
    },
    'supervisor listening',
  );
  // Upgrades driven by the control plane (docs/upgrades.md); none without a bundle root and injector.
  startRollout(cfg, supervisor, log).then(
    (r) => {
      if (exiting) r?.close();
      else control.rollout = r;
    },
    (err: unknown) => log.error({ err }, 'control-plane upgrades cannot start'),
  );

  let terms = 0;
  const onTerm = (signal: NodeJS.Signals): void => {
    terms += 1;
    if (terms > 1) {
      log.warn({ signal }, 'second termination signal: exiting now');
      exit(0);
      return;
    }
    log.info({ event: 'shutdown', signal, drainSeconds: cfg.proxy.drainSeconds }, 'draining, then exiting');
    supervisor.drain().then(
      () => exit(0),
      () => exit(0),
    );
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  process.on('SIGHUP', () => {
    try {
      supervisor.upgrade({}).then(
        (r) => log.info({ event: 'sighup_upgrade', ok: r.ok, reason: r.reason }, 'SIGHUP upgrade finished'),
        (err: unknown) => log.warn({ err }, 'SIGHUP upgrade failed'),
      );
    } catch (err) {
      if (err instanceof UpgradeBusyError) log.warn({ reason: err.message }, 'SIGHUP ignored');
      else log.error({ err }, 'SIGHUP upgrade failed');
    }
  });
}
