/**
 * A real Kubernetes control plane on loopback for test/k8s: kube-apiserver with embedded etcd and
 * kube-controller-manager, built from k8s.io/kubernetes by test/k8s/build.sh (harness/go.mod pins
 * the release), plus the injector as a process that talks to it with its own ServiceAccount's
 * token, as in a cluster. Every start gets its own state directory, ports and etcd; stop() ends
 * what it started by PID and removes the directory.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasTool, IN_CI } from '../helpers/env.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'test/k8s/bin');
const APISERVER = join(BIN, 'k8s-apiserver');
const CONTROLLER_MANAGER = join(BIN, 'k8s-controller-manager');

/**
 * Why the suite cannot run here, or undefined. Outside CI a missing binary skips with the
 * command that builds it; under CI=true it throws (.ci/run builds the harness before npm test).
 */
export function missingControlPlane(): string | undefined {
  const missing: string[] = [];
  if (!existsSync(APISERVER) || !existsSync(CONTROLLER_MANAGER))
    missing.push('the control plane binaries (run: bash test/k8s/build.sh, a few minutes the first time)');
  if (!hasTool('kubectl')) missing.push('kubectl');
  if (missing.length === 0) return undefined;
  const reason = `needs ${missing.join(' and ')}`;
  if (IN_CI) throw new Error(`CI=true but test/k8s ${reason}: .ci/run must build it`);
  return reason;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  server: string;
  dir: string;
  kubeconfig: string;
  caFile: string;
  /** kubectl against this API server as cluster admin (or with `kubeconfig` given). */
  kubectl(args: readonly string[], opts?: { input?: string; kubeconfig?: string }): Promise<KubectlResult>;
  /** Like kubectl, but throws with stderr on a non-zero exit. */
  kubectlOk(args: readonly string[], opts?: { input?: string; kubeconfig?: string }): Promise<string>;
  /** Routes the API server's CONNECT to a Service ClusterIP:port to a loopback port. */
  route(target: string, to: string): void;
  /** A kubeconfig that authenticates with `token` (a ServiceAccount's). */
  tokenKubeconfig(name: string, token: string): string;
  log(): string;
  stop(): Promise<void>;
}

function run(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr: stderr || (err && !err.code ? String(err.message) : '') });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function waitFor<T>(
  what: string,
  ms: number,
  probe: () => T | undefined,
  onFail: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms\n${onFail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts etcd + kube-apiserver + kube-controller-manager; resolves once /readyz answers ok. */
export async function startControlPlane(): Promise<ControlPlane> {
  // Under /tmp: the egress Unix socket's path must stay short.
  const dir = mkdtempSync(join(tmpdir(), 'remora-k8s-'));
  const logFile = join(dir, 'apiserver.log');
  let logText = '';
  const child: ChildProcess = spawn(APISERVER, ['--dir', dir, '--controller-manager', CONTROLLER_MANAGER], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const append = (c: Buffer): void => {
    logText += c.toString();
    if (logText.length > 4_000_000) logText = logText.slice(-2_000_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exited ${code ?? signal}`));
  const tail = (): string => logText.slice(-6000);
  const ready = await waitFor(
    'kube-apiserver',
    150_000,
    () => {
      if (exited) throw new Error(`k8s-apiserver ${exited}:\n${tail()}`);
      const f = join(dir, 'ready.json');
      return existsSync(f)
        ? (JSON.parse(readFileSync(f, 'utf8')) as { server: string; kubeconfig: string; caFile: string })
        : undefined;
    },
    tail,
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  const env = { ...process.env, KUBECONFIG: ready.kubeconfig };
  const kubectl: ControlPlane['kubectl'] = (args, opts) =>
    run('kubectl', args, opts?.kubeconfig ? { ...env, KUBECONFIG: opts.kubeconfig } : env, opts?.input);
  const kubectlOk: ControlPlane['kubectlOk'] = async (args, opts) => {
    const r = await kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const routesFile = join(dir, 'egress-routes.json');
  const routes: Record<string, string> = {};
  const cp: ControlPlane = {
    server: ready.server,
    dir,
    kubeconfig: ready.kubeconfig,
    caFile: ready.caFile,
    kubectl,
    kubectlOk,
    route(target, to) {
      routes[target] = to;
      writeFileSync(`${routesFile}.tmp`, JSON.stringify(routes));
      // Rename: the proxy never reads a half-written file.
      renameSync(`${routesFile}.tmp`, routesFile);
    },
    tokenKubeconfig(name, token) {
      const f = join(dir, `${name}.kubeconfig`);
      writeFileSync(
        f,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            { name: 'harness', cluster: { server: ready.server, 'certificate-authority': ready.caFile } },
          ],
          users: [{ name, user: { token } }],
          contexts: [{ name: 'harness', context: { cluster: 'harness', user: name } }],
          'current-context': 'harness',
        }),
        { mode: 0o600 },
      );
      return f;
    },
    log: () => {
      writeFileSync(logFile, logText);
      return logText;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cp;
}

/** Creates a namespace with labels and waits for its default ServiceAccount. */
export async function createNamespace(
  cp: ControlPlane,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
  await cp.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(ns) });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await cp.kubectl(['-n', name, 'get', 'serviceaccount', 'default', '-o', 'name']);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`namespace ${name}: no default ServiceAccount after 60 s`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

export interface InjectorProcess {
  webhookPort: number;
  caPort: number;
  pid: number;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Runs the compiled injector (injector/dist, as the image does) on loopback with `kubeconfig`
 * and resolves once both listeners are up (their ports from its `started` and `ca_started` log
 * lines).
 */
export async function startInjectorProcess(
  kubeconfig: string,
  env: Record<string, string> = {},
): Promise<InjectorProcess> {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'injector/dist/bin/remora-injector.js'), '--kubeconfig', kubeconfig, '--host', '127.0.0.1'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        REMORA_INJECTOR_PORT: '0',
        REMORA_CA_PORT: '0',
        REMORA_INJECTOR_TLS_DIR: '/nonexistent/remora-tls',
        REMORA_LOG_LEVEL: 'info',
        ...env,
      },
    },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exited ${code ?? signal}`));
  const port = (event: string): number | undefined => {
    for (const line of out.split('\n')) {
      if (!line.includes(`"event":"${event}"`)) continue;
      try {
        const p = (JSON.parse(line) as { port?: number }).port;
        if (typeof p === 'number') return p;
      } catch {
        // a partial line: read again on the next poll
      }
    }
    return undefined;
  };
  const ports = await waitFor(
    'remora-injector',
    30_000,
    () => {
      if (exited) throw new Error(`remora-injector ${exited}:\n${out.slice(-4000)}`);
      const w = port('started');
      const c = port('ca_started');
      return w !== undefined && c !== undefined ? { w, c } : undefined;
    },
    () => out.slice(-4000),
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    webhookPort: ports.w,
    caPort: ports.c,
    pid: child.pid as number,
    logs: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** A kubeconfig with a fresh TokenRequest token of the injector's ServiceAccount (deploy/base). */
export async function injectorKubeconfig(cp: ControlPlane): Promise<string> {
  const token = (
    await cp.kubectlOk(['-n', 'remora-system', 'create', 'token', 'remora-injector', '--duration=2h'])
  ).trim();
  return cp.tokenKubeconfig('remora-injector', token);
}

/**
 * The injector as in a cluster: on its ServiceAccount's token, behind the Service of deploy/base,
 * whose ClusterIP:443 the API server's egress proxy sends to the injector's loopback port.
 */
export async function startMeshedInjector(cp: ControlPlane, kubeconfig?: string): Promise<InjectorProcess> {
  const injector = await startInjectorProcess(kubeconfig ?? (await injectorKubeconfig(cp)));
  const ip = (
    await cp.kubectlOk([
      '-n',
      'remora-system',
      'get',
      'svc',
      'remora-injector',
      '-o',
      'jsonpath={.spec.clusterIP}',
    ])
  ).trim();
  cp.route(`${ip}:443`, `127.0.0.1:${injector.webhookPort}`);
  return injector;
}

/** A control plane with deploy/base applied and the injector serving it. */
export async function startControlPlaneWithInjector(): Promise<{
  cp: ControlPlane;
  injector: InjectorProcess;
}> {
  const cp = await startControlPlane();
  try {
    await cp.kubectlOk(['apply', '--server-side', '-k', join(ROOT, 'deploy/base')]);
    return { cp, injector: await startMeshedInjector(cp) };
  } catch (err) {
    await cp.stop();
    throw err;
  }
}
