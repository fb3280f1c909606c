/**
 * One remora-proxy process of a two-proxy bench (mtls.ts, grpc.ts): every listener on its own
 * loopback port, access log off, started and waited for until ready.
 */
import { join } from 'node:path';
import { ENV } from '@remora/proxy/contract';
import { waitForHttp } from './procs.js';
import type { Processes, Started } from './procs.js';

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
): Promise<Started> {
  const s = procs.start(name, process.execPath, [proxyBin], {
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
