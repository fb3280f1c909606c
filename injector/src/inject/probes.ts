/**
 * App probe rewriting: the kubelet's httpGet, tcpSocket and grpc probes of app containers are
 * pointed at the proxy's health port (`15020 /app-health/<container>/<livez|readyz|startupz>`),
 * which runs the original check from inside the pod. Without this, `strict` mTLS would refuse
 * the kubelet's plaintext probes. The originals travel in REMORA_APP_PROBES (format in
 * docs/injector.md). exec probes run inside the container and stay as they are.
 */
import { HEALTH_PATHS, PORTS } from '@remora/proxy/contract';
import type { Container, Probe } from './types.js';

export const PROBE_KINDS = [
  { field: 'livenessProbe', suffix: 'livez' },
  { field: 'readinessProbe', suffix: 'readyz' },
  { field: 'startupProbe', suffix: 'startupz' },
] as const;

/** One original probe as the proxy executes it; keys of REMORA_APP_PROBES are the paths. */
export type AppProbe =
  | {
      kind: 'http';
      port: number;
      path: string;
      scheme: 'HTTP' | 'HTTPS';
      host?: string;
      headers?: { name: string; value: string }[];
      timeoutSeconds: number;
    }
  | { kind: 'tcp'; port: number; host?: string; timeoutSeconds: number }
  | { kind: 'grpc'; port: number; service?: string; timeoutSeconds: number };

export interface ProbeRewrite {
  /** Which probe field of which container to replace, by the container's list and index. */
  list: 'containers' | 'initContainers';
  index: number;
  field: (typeof PROBE_KINDS)[number]['field'];
  probe: Probe;
}

/** Resolves a probe port (number or the name of one of the container's ports). */
function resolvePort(c: Container, port: unknown): number | undefined {
  if (typeof port === 'number') return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
  if (typeof port !== 'string') return undefined;
  if (/^\d+$/.test(port)) return resolvePort(c, Number(port));
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

function original(c: Container, p: Probe): AppProbe | undefined {
  const timeoutSeconds = typeof p.timeoutSeconds === 'number' ? p.timeoutSeconds : 1;
  if (p.httpGet) {
    const port = resolvePort(c, p.httpGet.port);
    if (port === undefined) return undefined;
    const out: AppProbe = {
      kind: 'http',
      port,
      path: typeof p.httpGet.path === 'string' && p.httpGet.path !== '' ? p.httpGet.path : '/',
      scheme: p.httpGet.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP',
      timeoutSeconds,
    };
    if (typeof p.httpGet.host === 'string' && p.httpGet.host !== '') out.host = p.httpGet.host;
    const headers = Array.isArray(p.httpGet.httpHeaders)
      ? p.httpGet.httpHeaders.filter(
          (h): h is { name: string; value: string } =>
            typeof h === 'object' && h !== null && typeof h.name === 'string' && typeof h.value === 'string',
        )
      : [];
    if (headers.length > 0) out.headers = headers.map((h) => ({ name: h.name, value: h.value }));
    return out;
  }
  if (p.tcpSocket) {
    const port = resolvePort(c, p.tcpSocket.port);
    if (port === undefined) return undefined;
    const out: AppProbe = { kind: 'tcp', port, timeoutSeconds };
    if (typeof p.tcpSocket.host === 'string' && p.tcpSocket.host !== '') out.host = p.tcpSocket.host;
    return out;
  }
  if (p.grpc) {
    const port = resolvePort(c, p.grpc.port);
    if (port === undefined) return undefined;
    const out: AppProbe = { kind: 'grpc', port, timeoutSeconds };
    if (typeof p.grpc.service === 'string' && p.grpc.service !== '') out.service = p.grpc.service;
    return out;
  }
  return undefined;
}

export function appHealthPath(container: string, suffix: string): string {
  return `${HEALTH_PATHS.appHealthPrefix}${container}/${suffix}`;
}

/**
 * Rewrites the probes of app containers and of user native sidecars (init containers with
 * `restartPolicy: Always`), whose probes also cross the captured network.
 */
export function rewriteProbes(
  containers: readonly Container[],
  initContainers: readonly Container[],
): { rewrites: ProbeRewrite[]; originals: Record<string, AppProbe> } {
  const rewrites: ProbeRewrite[] = [];
  const originals: Record<string, AppProbe> = {};
  const visit = (list: ProbeRewrite['list'], c: Container, index: number): void => {
    for (const { field, suffix } of PROBE_KINDS) {
      const p = c[field];
      if (!p) continue;
      const orig = original(c, p);
      if (!orig) continue;
      const path = appHealthPath(c.name, suffix);
      originals[path] = orig;
      const { httpGet: _h, tcpSocket: _t, grpc: _g, ...rest } = p;
      rewrites.push({
        list,
        index,
        field,
        probe: { ...rest, httpGet: { path, port: PORTS.health, scheme: 'HTTP' } },
      });
    }
  };
  initContainers.forEach((c, i) => {
    if (c.restartPolicy === 'Always') visit('initContainers', c, i);
  });
  containers.forEach((c, i) => visit('containers', c, i));
  return { rewrites, originals };
}
