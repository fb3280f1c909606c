/**
 * Remora in a harness pod, the way the injector lays it out: remora-init as root, then
 * remora-proxy as the proxy UID/GID, both the compiled binaries (test/global-setup.ts builds them).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newRoot } from '../../../injector/src/ca/root.js';
import { ENV, INJECTOR_ENV, PORTS, PROXY_GID, PROXY_UID } from '../../../proxy/src/contract.js';
import { REPO_ROOT } from './harness.js';
import type { ExecResult, Harness, Identity, Pod, Proc } from './harness.js';
import { eventually, httpRequest, readMetrics } from './traffic.js';
import type { Sample } from './traffic.js';

export const BIN = Object.freeze({
  init: `${REPO_ROOT}proxy/dist/bin/remora-init.js`,
  proxy: `${REPO_ROOT}proxy/dist/bin/remora-proxy.js`,
  injector: `${REPO_ROOT}injector/dist/bin/remora-injector.js`,
});

export interface MeshCa {
  readonly proc: Proc;
  /** the sidecars' env for one pod: the CA, its bundle, a token file for `token`, the trust domain */
  env(token: string, extra?: Readonly<Record<string, string>>): Record<string, string>;
}

/**
 * The mesh's identity CA (remora-injector without Kubernetes, a fresh root, static tokens:
 * token → `namespace/serviceaccount`) in `pod`, listening on `port`; resolves once it serves.
 */
export async function startMeshCa(
  h: Harness,
  pod: Pod,
  opts: { trustDomain: string; tokens: Readonly<Record<string, string>>; port: number },
): Promise<MeshCa> {
  const root = newRoot(opts.trustDomain);
  const caDir = h.tempDir();
  const files = h.tempDir(PROXY_IDENTITY);
  writeFileSync(join(caDir, 'ca.crt'), root.certPem);
  writeFileSync(join(caDir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(caDir, 'tokens.json'), JSON.stringify(opts.tokens));
  writeFileSync(join(files, 'bundle.pem'), root.certPem);
  const proc = h.spawn(pod, process.execPath, [BIN.injector, '--no-kubernetes'], {
    label: 'identity CA',
    env: {
      [INJECTOR_ENV.caDir]: caDir,
      [INJECTOR_ENV.staticTokens]: join(caDir, 'tokens.json'),
      [INJECTOR_ENV.caPort]: String(opts.port),
      [INJECTOR_ENV.port]: String(opts.port + 1000),
      [INJECTOR_ENV.logLevel]: 'info',
    },
  });
  await proc.waitForLine(/"event":"ca_started"/, 15_000);
  return {
    proc,
    env: (token, extra = {}) => {
      const tokenFile = join(files, `${token}.token`);
      writeFileSync(tokenFile, token);
      return {
        [ENV.caAddress]: `${pod.ip}:${opts.port}`,
        [ENV.caBundleFile]: join(files, 'bundle.pem'),
        [ENV.tokenFile]: tokenFile,
        [ENV.trustDomain]: opts.trustDomain,
        ...extra,
      };
    },
  };
}

export const PROXY_IDENTITY: Identity = Object.freeze({ uid: PROXY_UID, gid: PROXY_GID });

/** Runs remora-init inside the pod as root; throws with its output when it fails. */
export async function runInit(h: Harness, pod: Pod, flags: readonly string[] = []): Promise<ExecResult> {
  const r = await h.exec(pod, process.execPath, [BIN.init, ...flags]);
  if (r.code !== 0)
    throw new Error(`remora-init ${flags.join(' ')} in ${pod.name} exited ${r.code}:\n${r.stderr}`);
  return r;
}

/**
 * Starts remora-proxy as UID/GID 1337 and waits until /healthz/ready answers 200. Its files (the
 * admin token) go to a directory of its own, owned by 1337 and removed at teardown. Like the
 * injector's downward API, REMORA_POD_IP is the pod's IPv4 address, so inbound traffic reaches
 * the app at `<pod IP>:<port>` from 127.0.0.6 (pass `[ENV.podIp]: ''` for loopback delivery).
 */
export async function startProxy(
  h: Harness,
  pod: Pod,
  env: Readonly<Record<string, string>> = {},
): Promise<Proc> {
  const proc = h.spawn(pod, process.execPath, [BIN.proxy], {
    as: PROXY_IDENTITY,
    env: {
      [ENV.logLevel]: 'warn',
      [ENV.podIp]: pod.ip,
      [ENV.adminTokenFile]: join(h.tempDir(PROXY_IDENTITY), 'admin-token'),
      ...env,
    },
    label: 'remora-proxy',
  });
  const healthPort = Number(env[ENV.healthPort] ?? PORTS.health);
  let exited = false;
  void proc.exited.then(() => (exited = true));
  await eventually(
    `remora-proxy ready in ${pod.name}`,
    async () => {
      if (exited) throw new Error(`remora-proxy exited:\n${proc.output()}`);
      return httpRequest(h, pod, `http://127.0.0.1:${healthPort}/healthz/ready`);
    },
    (r) => exited || (r.ok && r.status === 200),
    15_000,
  );
  if (exited) throw new Error(`remora-proxy in ${pod.name} exited during start:\n${proc.output()}`);
  return proc;
}

/** The pod proxy's metrics (15090 unless REMORA_METRICS_PORT says otherwise). */
export function proxyMetrics(h: Harness, pod: Pod, port: number = PORTS.metrics): Promise<Sample[]> {
  return readMetrics(h, pod, port);
}
