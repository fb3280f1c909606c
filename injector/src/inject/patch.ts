/**
 * buildPatch: the RFC 6902 JSON Patch that injects Remora into one pod (or pod template), a pure
 * function of the pod, the decision, the mesh config and the parsed annotations (STYLE #1).
 * Absent arrays and maps are added whole; probe replacements come first, because inserting the
 * sidecar shifts container indexes.
 */
import { ANNOTATIONS, ENV, PROXY_CONTAINER_NAME, INIT_CONTAINER_NAME, VERSION } from '@remora/proxy/contract';
import type { MeshConfig } from '../config/mesh.js';
import type { InjectOptions } from './annotations.js';
import type { Decision } from './decide.js';
import { pointer } from './jsonpatch.js';
import type { JsonPatchOp } from './jsonpatch.js';
import { rewriteProbes } from './probes.js';
import { RESERVED_PORTS, VOLUMES, buildInitContainer, buildProxyContainer, buildVolumes } from './sidecar.js';
import type { PodLike } from './types.js';
import { workloadName } from './workload.js';

/** The value of `remora.dev/status`: what was injected, by which version. */
export interface InjectionStatus {
  version: string;
  mode: 'native' | 'legacy';
  initContainers: string[];
  containers: string[];
  volumes: string[];
  rewrittenProbes: string[];
}

/**
 * Problems of the pod itself that would make the injected pod broken: app ports colliding with
 * the proxy's, volume names already taken. Reported like invalid annotations.
 */
export function podConflicts(pod: PodLike): string[] {
  const errors: string[] = [];
  for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') === 'TCP' && RESERVED_PORTS.includes(p.containerPort)) {
        errors.push(
          `container ${JSON.stringify(c.name)} declares port ${p.containerPort}, reserved for remora-proxy (${RESERVED_PORTS.join(', ')})`,
        );
      }
    }
  }
  const ours = new Set<string>(Object.values(VOLUMES));
  for (const v of pod.spec.volumes ?? []) {
    const name = (v as { name?: unknown }).name;
    if (typeof name === 'string' && ours.has(name)) {
      errors.push(`volume name ${JSON.stringify(name)} is reserved for remora-proxy`);
    }
  }
  return errors;
}

export function buildPatch(
  pod: PodLike,
  decision: Decision,
  mesh: MeshConfig,
  opts: InjectOptions,
): JsonPatchOp[] {
  if (!decision.inject) return [];
  const ops: JsonPatchOp[] = [];
  const spec = pod.spec;
  const userInit = spec.initContainers ?? [];

  const { rewrites, originals } = opts.rewriteProbes
    ? rewriteProbes(spec.containers, userInit)
    : { rewrites: [], originals: {} };
  for (const r of rewrites) {
    ops.push({ op: 'replace', path: pointer('spec', r.list, r.index, r.field), value: r.probe });
  }

  const init = buildInitContainer(opts, mesh);
  const proxy = buildProxyContainer(opts, mesh, originals, workloadName(pod));
  const volumes = buildVolumes();
  const status: InjectionStatus = {
    version: VERSION,
    mode: opts.nativeSidecar ? 'native' : 'legacy',
    initContainers: opts.nativeSidecar ? [INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME] : [INIT_CONTAINER_NAME],
    containers: opts.nativeSidecar ? [] : [PROXY_CONTAINER_NAME],
    volumes: volumes.map((v) => v.name as string),
    rewrittenProbes: Object.keys(originals),
  };
  const statusText = JSON.stringify(status);

  if (!pod.metadata) {
    ops.push({ op: 'add', path: '/metadata', value: { annotations: { [ANNOTATIONS.status]: statusText } } });
  } else if (!pod.metadata.annotations) {
    ops.push({ op: 'add', path: '/metadata/annotations', value: { [ANNOTATIONS.status]: statusText } });
  } else {
    ops.push({ op: 'add', path: pointer('metadata', 'annotations', ANNOTATIONS.status), value: statusText });
  }

  if (!spec.volumes) ops.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const v of volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });

  if (opts.nativeSidecar) {
    // remora-init → remora-proxy → user init containers: theirs run with the proxy up.
    if (!spec.initContainers) ops.push({ op: 'add', path: '/spec/initContainers', value: [init, proxy] });
    else {
      ops.push({ op: 'add', path: '/spec/initContainers/0', value: proxy });
      ops.push({ op: 'add', path: '/spec/initContainers/0', value: init });
    }
  } else {
    // Legacy: user init containers run before capture exists (no proxy yet to serve them).
    if (!spec.initContainers) ops.push({ op: 'add', path: '/spec/initContainers', value: [init] });
    else ops.push({ op: 'add', path: '/spec/initContainers/-', value: init });
    ops.push({ op: 'add', path: '/spec/containers/0', value: proxy });
  }
  return ops;
}

/**
 * Reinvocation (`reinvocationPolicy: IfNeeded`): the API server calls the webhook again when a
 * later webhook changed a pod Remora already injected. A container added since then has probes
 * the kubelet would send straight to the app (refused under strict mTLS), so they are rewritten
 * like the first ones: the probes, REMORA_APP_PROBES of remora-proxy and `remora.dev/status`.
 * Empty when nothing is new (a second admission changes nothing).
 */
export function reinvocationPatch(pod: PodLike, opts: InjectOptions): JsonPatchOp[] {
  if (!opts.rewriteProbes) return [];
  const raw = pod.metadata?.annotations?.[ANNOTATIONS.status];
  let status: InjectionStatus;
  try {
    status = JSON.parse(raw ?? '') as InjectionStatus;
  } catch {
    return [];
  }
  if (!Array.isArray(status.rewrittenProbes)) return [];
  const spec = pod.spec;
  const lists = { containers: spec.containers, initContainers: spec.initContainers ?? [] } as const;
  let where: { list: 'containers' | 'initContainers'; index: number } | undefined;
  for (const list of ['initContainers', 'containers'] as const) {
    const i = lists[list].findIndex((c) => c.name === PROXY_CONTAINER_NAME);
    if (i >= 0) where = { list, index: i };
  }
  if (!where) return [];
  const proxy = lists[where.list][where.index] as { env?: { name: string; value?: string }[] };
  const done = new Set(status.rewrittenProbes);
  // Remora's own containers are not the app's; their probes are ours already.
  const ours = new Set([PROXY_CONTAINER_NAME, INIT_CONTAINER_NAME]);
  const { rewrites, originals } = rewriteProbes(spec.containers, spec.initContainers ?? []);
  const fresh = rewrites.filter((r) => {
    const c = lists[r.list][r.index];
    const path = (r.probe.httpGet as { path: string }).path;
    return c !== undefined && !ours.has(c.name) && !done.has(path);
  });
  if (fresh.length === 0) return [];
  const ops: JsonPatchOp[] = [];
  const added: Record<string, unknown> = {};
  for (const r of fresh) {
    ops.push({ op: 'replace', path: pointer('spec', r.list, r.index, r.field), value: r.probe });
    const path = (r.probe.httpGet as { path: string }).path;
    added[path] = originals[path];
  }
  const env = proxy.env ?? [];
  const at = env.findIndex((e) => e.name === ENV.appProbes);
  let merged: Record<string, unknown> = {};
  if (at >= 0) {
    try {
      merged = JSON.parse(env[at]?.value ?? '{}') as Record<string, unknown>;
    } catch {
      merged = {};
    }
  }
  const value = JSON.stringify({ ...merged, ...added });
  const base = pointer('spec', where.list, where.index);
  if (!proxy.env) ops.push({ op: 'add', path: `${base}/env`, value: [{ name: ENV.appProbes, value }] });
  else if (at < 0) ops.push({ op: 'add', path: `${base}/env/-`, value: { name: ENV.appProbes, value } });
  else ops.push({ op: 'replace', path: `${base}/env/${at}`, value: { name: ENV.appProbes, value } });
  const next: InjectionStatus = {
    ...status,
    rewrittenProbes: [...status.rewrittenProbes, ...Object.keys(added)],
  };
  ops.push({
    op: 'replace',
    path: pointer('metadata', 'annotations', ANNOTATIONS.status),
    value: JSON.stringify(next),
  });
  return ops;
}
