/**
 * buildPatch: the RFC 6902 JSON Patch that injects Remora into one pod (or pod template), a pure
 * function of the pod, the decision, the mesh config and the parsed annotations (STYLE #1).
 * Absent arrays and maps are added whole; probe replacements come first, because inserting the
 * sidecar shifts container indexes.
 */
import { ANNOTATIONS, PROXY_CONTAINER_NAME, INIT_CONTAINER_NAME, VERSION } from '@remora/proxy/contract';
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
