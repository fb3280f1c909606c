/**
 * One remora-proxy process of a two-proxy bench (mtls.ts, grpc.ts, run.ts): every listener on its
 * own loopback port, access log off, started and waited for until ready; and the mesh those
 * benches share: the injector's CA (--no-kubernetes, static tokens) and a discovery file that
 * sends a service to one meshed endpoint.
 */
import { writeFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV, INJECTOR_ENV } from '@remora/proxy/contract';
import { waitForHttp, waitForPort } from './procs.js';
import type { Processes, Started } from './procs.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INJECTOR = join(ROOT, 'injector/dist/bin/remora-injector.js');
/** The service address the client side (A) calls; discovery maps it to B. */
export const MESH_SERVICE = '127.0.0.250:80';
export const TRUST_DOMAIN = 'cluster.local';
const TOKENS = { 'bench-token-a-0123456789': 'bench/a', 'bench-token-b-0123456789': 'bench/b' };
const TOKEN_OF = { a: 'bench-token-a-0123456789', b: 'bench-token-b-0123456789' } as const;

/** The injector's PKI, from its build (the benches only need a root and leaves). */
export interface Root {
  certPem: string;
  privateKey: KeyObject;
}

export interface MeshCa {
  readonly root: Root;
  readonly process: Started;
  /** The env a sidecar of service account bench/a or bench/b needs to get its certificate. */
  env(side: 'a' | 'b'): Record<string, string>;
}

/** Starts the injector's CA on `caPort` (its webhook on `webhookPort`) with the bench tokens. */
export async function startMeshCa(
  procs: Processes,
  dir: string,
  caPort: number,
  webhookPort: number,
): Promise<MeshCa> {
  const { newRoot } = (await import(join(ROOT, 'injector/dist/ca/root.js'))) as {
    newRoot: (td: string) => Root;
  };
  const root = newRoot(TRUST_DOMAIN);
  writeFileSync(join(dir, 'ca.crt'), root.certPem);
  writeFileSync(join(dir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify(TOKENS));
  for (const t of Object.keys(TOKENS)) writeFileSync(join(dir, `${t}.token`), t);
  const ca = procs.start('ca', process.execPath, [INJECTOR, '--no-kubernetes', '--host', '127.0.0.1'], {
    env: {
      ...process.env,
      [INJECTOR_ENV.caDir]: dir,
      [INJECTOR_ENV.staticTokens]: join(dir, 'tokens.json'),
      [INJECTOR_ENV.caPort]: String(caPort),
      [INJECTOR_ENV.port]: String(webhookPort),
      [INJECTOR_ENV.logLevel]: 'warn',
    },
  });
  await waitForPort(caPort, ca, 20_000);
  return {
    root,
    process: ca,
    env: (side) => ({
      [ENV.caAddress]: `127.0.0.1:${caPort}`,
      [ENV.caBundleFile]: join(dir, 'ca.crt'),
      [ENV.tokenFile]: join(dir, `${TOKEN_OF[side]}.token`),
    }),
  };
}

/** A discovery file: `service` → one meshed endpoint (B's tunnel port, identity bench/b). */
export function writeDiscovery(
  file: string,
  backendPort: number,
  tunnelPort: number,
  service = MESH_SERVICE,
): void {
  writeFileSync(
    file,
    JSON.stringify({
      services: {
        [service]: {
          endpoints: [
            {
              ip: '127.0.0.1',
              port: backendPort,
              meshed: true,
              identity: `spiffe://${TRUST_DOMAIN}/ns/bench/sa/b`,
              tunnelPort,
            },
          ],
        },
      },
    }),
  );
}

export interface ProxyPorts {
  inbound: number;
  outbound: number;
  tunnel: number;
  health: number;
  metrics: number;
  admin: number;
}

/** Starts `proxyBin` as `name` on ports `p` (state files under `dir`) with `env` on top. */
export async function startMeshProxy(
  procs: Processes,
  proxyBin: string,
  dir: string,
  name: string,
  p: ProxyPorts,
  env: Record<string, string>,
  onStdout?: (chunk: string) => void,
): Promise<Started> {
  const s = procs.start(name, process.execPath, [proxyBin], {
    ...(onStdout === undefined ? {} : { onStdout }),
    env: {
      ...process.env,
      [ENV.bindHost]: '127.0.0.1',
      [ENV.inboundPort]: String(p.inbound),
      [ENV.outboundPort]: String(p.outbound),
      [ENV.tunnelPort]: String(p.tunnel),
      [ENV.healthPort]: String(p.health),
      [ENV.metricsPort]: String(p.metrics),
      [ENV.adminPort]: String(p.admin),
      [ENV.adminTokenFile]: join(dir, `${name}.admin-token`),
      [ENV.logLevel]: 'warn',
      [ENV.accessLog]: 'off',
      ...env,
    },
  });
  await waitForHttp(`http://127.0.0.1:${p.health}/healthz/ready`, s, 20_000);
  return s;
}
