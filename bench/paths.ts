/**
 * Starting the paths `npm run bench` measures, each ready and checked to answer the backend's
 * body: the backend (nginx, 1 worker), nginx as a proxy in its own process, http-proxy, Remora
 * under its supervisor (this tree's and, with --baseline, an earlier tree's), with telemetry off
 * and on, and the two mesh hops (two Remora sidecars with mTLS; two nginx with mutual TLS).
 * Every process goes through `Processes`, so it is stopped by PID whatever happens.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENV, OTEL_ENV } from '@remora/proxy/contract';
import { MESH_SERVICE, startMeshCa, startMeshProxy, writeDiscovery } from './mesh-proxy.js';
import type { MeshCa } from './mesh-proxy.js';
import {
  leafExtension,
  opensslCommands,
  renderNginxMeshConfs,
  renderSplitNginxConfs,
  BACKEND_BODY,
} from './nginx.js';
import { httpGet, waitForHttp, waitForPort } from './procs.js';
import type { Processes, Started } from './procs.js';
import { pathId, REMORA_PATHS } from './report.js';
import type { PathName, Tree } from './report.js';

/** How a member's processes are named in the figures: its root and its descendants. */
export type MemberKind = 'remora' | 'nginx' | 'node';

export interface Member {
  /** `proxy` for one hop; `a` (client side) and `b` (server side) for a mesh hop. */
  readonly side: 'proxy' | 'a' | 'b';
  readonly kind: MemberKind;
  readonly proc: Started;
}

export interface Target {
  readonly id: string;
  readonly path: PathName;
  readonly tree: Tree;
  readonly url: string;
  /** The proxy processes whose CPU and PSS are the path's cost (none for direct). */
  readonly members: readonly Member[];
  /** Telemetry-on sidecars' metrics ports, scraped during the run. */
  readonly metricsPorts: readonly number[];
}

export interface Trees {
  /** remora-proxy.js of this tree and, with --baseline, of the earlier one. */
  readonly current: string;
  readonly baseline?: string;
}

export interface Telemetry {
  /** The OTLP/HTTP receiver's base URL (the proxy appends /v1/traces). */
  readonly otlpUrl: string;
  /** Called with every chunk a telemetry-on sidecar writes to stdout (its access log). */
  readonly onAccessLog: (chunk: string) => void;
}

/** Hands out distinct free ports from one batch (all taken at once, so none repeats). */
export class PortPool {
  readonly #ports: number[];
  constructor(ports: readonly number[]) {
    this.#ports = [...ports];
  }
  take(): number {
    const p = this.#ports.shift();
    if (p === undefined) throw new Error('bench: out of ports (PortPool sized too small)');
    return p;
  }
}

/** Ports one run needs at most: backend, nginx, http-proxy, 2 mesh nginx, CA 2, 5 per one-hop sidecar, 12 per mesh pair. */
export function portsNeeded(paths: readonly PathName[], withBaseline: boolean): number {
  const trees = withBaseline ? 2 : 1;
  let n = 3 + 2 + 2;
  for (const p of paths) {
    if (p === 'remora' || p === 'remora-telemetry') n += 5 * trees;
    if (p === 'mesh-remora' || p === 'mesh-remora-telemetry') n += 12 * trees;
  }
  return n;
}

export interface Running {
  readonly targets: Target[];
  /** Why a path is not measured, for each path (id) that is not. */
  readonly skipped: Map<string, string>;
  /** Every long-running process, for the CPU accounting of the whole run. */
  readonly servers: Started[];
}

export interface StartOptions {
  readonly procs: Processes;
  readonly dir: string;
  readonly paths: readonly PathName[];
  readonly trees: Trees;
  readonly httpProxyBin: string;
  readonly ports: PortPool;
  readonly telemetry: Telemetry;
  readonly log: (msg: string) => void;
}

/** The runs of each path: this tree's, then (for Remora paths, with --baseline) the earlier one's, adjacent. */
export function plan(paths: readonly PathName[], withBaseline: boolean): { path: PathName; tree: Tree }[] {
  return paths.flatMap((path) => [
    { path, tree: 'current' as Tree },
    ...(withBaseline && REMORA_PATHS.includes(path) ? [{ path, tree: 'baseline' as Tree }] : []),
  ]);
}

export async function startPaths(o: StartOptions): Promise<Running> {
  const { procs, dir, ports } = o;
  const backendPort = ports.take();
  const proxyPort = ports.take();
  const backend = `127.0.0.1:${backendPort}`;
  const confs = renderSplitNginxConfs({ dir, backendPort, proxyPort });
  const backendProc = startNginx(procs, dir, 'backend', confs.backend);
  await waitForHttp(`http://${backend}/`, backendProc);
  const servers: Started[] = [backendProc];
  const targets: Target[] = [];
  const skipped = new Map<string, string>();
  let ca: MeshCa | undefined;
  const meshCa = async (): Promise<MeshCa> => {
    if (ca === undefined) {
      ca = await startMeshCa(procs, dir, ports.take(), ports.take());
      servers.push(ca.process);
    }
    return ca;
  };

  for (const { path, tree } of plan(o.paths, o.trees.baseline !== undefined)) {
    const id = pathId(path, tree);
    const bin = tree === 'baseline' ? (o.trees.baseline ?? '') : o.trees.current;
    const telemetryOn = path === 'remora-telemetry' || path === 'mesh-remora-telemetry';
    const extra = telemetryOn ? telemetryEnv(o.telemetry) : {};
    const onStdout = telemetryOn ? o.telemetry.onAccessLog : undefined;
    const add = (url: string, members: Member[], metricsPorts: number[] = []): void =>
      void targets.push({ id, path, tree, url, members, metricsPorts });
    try {
      if (path === 'direct') add(`http://${backend}/`, []);
      else if (path === 'nginx') {
        const proc = startNginx(procs, dir, 'proxy', confs.proxy);
        servers.push(proc);
        await waitForHttp(`http://127.0.0.1:${proxyPort}/`, proc);
        add(`http://127.0.0.1:${proxyPort}/`, [{ side: 'proxy', kind: 'nginx', proc }]);
      } else if (path === 'http-proxy') {
        const port = ports.take();
        const proc = procs.start('http-proxy', process.execPath, [o.httpProxyBin, String(port), backend]);
        servers.push(proc);
        await waitForHttp(`http://127.0.0.1:${port}/`, proc);
        add(`http://127.0.0.1:${port}/`, [{ side: 'proxy', kind: 'node', proc }]);
      } else if (path === 'remora' || path === 'remora-telemetry') {
        const p = {
          inbound: ports.take(),
          outbound: ports.take(),
          health: ports.take(),
          metrics: ports.take(),
          admin: ports.take(),
        };
        const proc = startRemora(procs, id, bin, backend, p, extra, onStdout);
        servers.push(proc);
        await waitForHttp(`http://127.0.0.1:${p.health}/healthz/ready`, proc, 20_000);
        add(
          `http://127.0.0.1:${p.inbound}/`,
          [{ side: 'proxy', kind: 'remora', proc }],
          telemetryOn ? [p.metrics] : [],
        );
      } else if (path === 'mesh-nginx') {
        const aPort = ports.take();
        const bPort = ports.take();
        const pki = makeMeshPki(dir);
        const mesh = renderNginxMeshConfs({ dir, backendPort, aPort, bPort, pki });
        const b = startNginx(procs, dir, 'mesh-b', mesh.b);
        servers.push(b);
        await waitForPort(bPort, b);
        const a = startNginx(procs, dir, 'mesh-a', mesh.a);
        servers.push(a);
        await waitForHttp(`http://127.0.0.1:${aPort}/`, a);
        add(`http://127.0.0.1:${aPort}/`, [
          { side: 'a', kind: 'nginx', proc: a },
          { side: 'b', kind: 'nginx', proc: b },
        ]);
      } else {
        // mesh-remora, mesh-remora-telemetry: A outbound → (discovery: meshed) → mTLS → B tunnel → backend
        const c = await meshCa();
        const sidePorts = () => ({
          inbound: ports.take(),
          outbound: ports.take(),
          tunnel: ports.take(),
          health: ports.take(),
          metrics: ports.take(),
          admin: ports.take(),
        });
        const bp = sidePorts();
        const ap = sidePorts();
        const safe = id.replace(/[^\w-]/g, '_');
        const b = await startMeshProxy(
          procs,
          bin,
          dir,
          `${safe}-b`,
          bp,
          {
            ...c.env('b'),
            [ENV.inboundTarget]: backend,
            ...extra,
          },
          onStdout,
        );
        servers.push(b);
        const discovery = join(dir, `${safe}-discovery.json`);
        writeDiscovery(discovery, backendPort, bp.tunnel);
        const a = await startMeshProxy(
          procs,
          bin,
          dir,
          `${safe}-a`,
          ap,
          {
            ...c.env('a'),
            [ENV.outboundTarget]: MESH_SERVICE,
            [ENV.discoveryFile]: discovery,
            ...extra,
          },
          onStdout,
        );
        servers.push(a);
        add(
          `http://127.0.0.1:${ap.outbound}/`,
          [
            { side: 'a', kind: 'remora', proc: a },
            { side: 'b', kind: 'remora', proc: b },
          ],
          telemetryOn ? [ap.metrics, bp.metrics] : [],
        );
      }
    } catch (e) {
      skipped.set(id, (e as Error).message.split('\n')[0] ?? 'failed to start');
      o.log(`! ${id}: not measured: ${(e as Error).message}`);
    }
  }
  // A path that answers something else than the backend's body would be measuring an error page.
  for (const t of [...targets]) {
    const r = await httpGet(t.url).catch((e: Error) => ({ status: 0, body: e.message }));
    if (r.status !== 200 || r.body !== BACKEND_BODY) {
      skipped.set(
        t.id,
        `answered ${r.status} ${JSON.stringify(r.body.slice(0, 80))} instead of the backend's body`,
      );
      targets.splice(targets.indexOf(t), 1);
      o.log(`! ${t.id}: not measured: ${skipped.get(t.id) ?? ''}`);
    }
  }
  return { targets, skipped, servers };
}

/** Telemetry as users run it: access log on, 1 % of requests traced and exported over OTLP/HTTP. */
function telemetryEnv(t: Telemetry): Record<string, string> {
  return {
    [ENV.accessLog]: 'on',
    // The access log is written at level info: at warn it would be on in name only.
    [ENV.logLevel]: 'info',
    [ENV.traceSampling]: '0.01',
    [OTEL_ENV.endpoint]: t.otlpUrl,
    [OTEL_ENV.bspScheduleDelay]: '1000',
  };
}

function startNginx(procs: Processes, dir: string, name: string, conf: string): Started {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, conf);
  return procs.start(`nginx-${name}`, 'nginx', ['-p', dir, '-e', join(dir, `${name}-error.log`), '-c', file]);
}

function startRemora(
  procs: Processes,
  id: string,
  bin: string,
  backend: string,
  p: { inbound: number; outbound: number; health: number; metrics: number; admin: number },
  extra: Record<string, string>,
  onStdout: ((chunk: string) => void) | undefined,
): Started {
  if (!existsSync(bin)) throw new Error(`${bin} is not built (npm run build)`);
  return procs.start(id.replace('@', '-'), process.execPath, [bin], {
    env: {
      ...process.env,
      [ENV.inboundPort]: String(p.inbound),
      [ENV.outboundPort]: String(p.outbound),
      [ENV.healthPort]: String(p.health),
      [ENV.metricsPort]: String(p.metrics),
      [ENV.adminPort]: String(p.admin),
      [ENV.bindHost]: '127.0.0.1',
      [ENV.inboundTarget]: backend,
      // Like nginx's `access_log off`: the comparison is of forwarding; the telemetry path turns it on.
      [ENV.accessLog]: 'off',
      [ENV.traceSampling]: '0',
      [ENV.logLevel]: 'warn',
      ...extra,
    },
    ...(onStdout === undefined ? {} : { onStdout }),
  });
}

let pki: ReturnType<typeof opensslCommands>['pki'] | undefined;

/** The mesh nginx PKI, as ../shared/bench/nginx-mesh-hop.sh makes it (openssl, P-256). */
function makeMeshPki(dir: string): ReturnType<typeof opensslCommands>['pki'] {
  if (pki !== undefined && existsSync(pki.ca)) return pki;
  const made = opensslCommands(dir);
  for (const n of ['a', 'b']) writeFileSync(join(dir, `mesh-${n}.ext`), leafExtension(n));
  for (const args of made.commands) execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  pki = made.pki;
  return pki;
}
