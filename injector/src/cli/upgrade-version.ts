/**
 * `remora upgrade --version V`: the in-place path of DESIGN §5 (docs/upgrades.md). Sets the
 * mesh config's `engine.version` in its ConfigMap (comments and the other fields kept; the
 * result validated with the injector's own parser before it is written; replaced on the
 * resourceVersion read, so a concurrent edit is not overwritten), then follows the rollout per
 * pod from the `remora.dev/engine` annotation the injector writes for what each proxy reports.
 */
import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { ENGINE_ANNOTATION, INJECTOR } from '@remora/proxy/contract';
import { parseDocument } from 'yaml';
import { parseMeshConfig } from '../config/mesh.js';
import { MeshConfigError } from '../errors.js';
import { proxyVersionOf } from './check.js';

export interface VersionCluster {
  configMap(namespace: string, name: string): Promise<V1ConfigMap>;
  replaceConfigMap(namespace: string, name: string, body: V1ConfigMap): Promise<V1ConfigMap>;
  pods(): Promise<V1Pod[]>;
}

/** The mesh.yaml text with `engine.version` set; throws MeshConfigError when the result is invalid. */
export function withEngineVersion(text: string, version: string): string {
  const doc = parseDocument(text === '' ? '{}' : text);
  if (doc.errors.length > 0) throw new MeshConfigError([`not valid YAML: ${doc.errors[0]?.message ?? ''}`]);
  doc.setIn(['engine', 'version'], version);
  const out = doc.toString();
  parseMeshConfig(out); // every problem named, nothing written
  return out;
}

export async function setVersion(
  api: VersionCluster,
  version: string,
  controlPlane: string = INJECTOR.namespace,
): Promise<{ previous: string }> {
  const cm = await api.configMap(controlPlane, INJECTOR.meshConfigMap);
  const text = cm.data?.[INJECTOR.meshConfigKey] ?? '';
  const previous = parseMeshConfig(text).engine.version;
  const next = withEngineVersion(text, version);
  await api.replaceConfigMap(controlPlane, INJECTOR.meshConfigMap, {
    ...cm,
    data: { ...cm.data, [INJECTOR.meshConfigKey]: next },
  });
  return { previous };
}

export interface PodProgress {
  readonly pod: string;
  /** what its proxy runs, as it last reported; undefined: no report yet */
  readonly version: string | undefined;
  readonly desired: string | undefined;
  readonly state: string | undefined;
  readonly detail: string | undefined;
  readonly verdict: 'done' | 'failed' | 'pending';
}

function report(pod: V1Pod): Record<string, unknown> | undefined {
  const raw = pod.metadata?.annotations?.[ENGINE_ANNOTATION];
  if (raw === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(raw);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Each meshed pod (in `namespace`, if given) and where it stands toward `version`. */
export function progressOf(pods: readonly V1Pod[], version: string, namespace?: string): PodProgress[] {
  return pods
    .filter(
      (p) =>
        proxyVersionOf(p) !== undefined &&
        (namespace === undefined || p.metadata?.namespace === namespace) &&
        p.status?.phase !== 'Succeeded' &&
        p.status?.phase !== 'Failed' &&
        p.metadata?.deletionTimestamp === undefined,
    )
    .map((p) => {
      const r = report(p);
      const running = str(r?.version);
      const desired = str(r?.desired);
      const state = str(r?.state);
      const verdict: PodProgress['verdict'] =
        running === version && state === 'current'
          ? 'done'
          : desired === version && (state === 'rolled-back' || state === 'refused')
            ? 'failed'
            : 'pending';
      return {
        pod: `${p.metadata?.namespace ?? '?'}/${p.metadata?.name ?? '?'}`,
        version: running,
        desired,
        state,
        detail: str(r?.detail),
        verdict,
      };
    })
    .sort((a, b) => (a.pod < b.pod ? -1 : 1));
}

function line(p: PodProgress): string {
  if (p.version === undefined) return `${p.pod}: no engine report yet`;
  const detail = p.detail !== undefined ? `: ${p.detail}` : '';
  if (p.verdict === 'failed')
    return `${p.pod}: FAILED on the way to ${p.desired ?? '?'} (${p.state ?? '?'}), runs ${p.version}${detail}`;
  return `${p.pod}: engine ${p.version} (${p.state ?? '?'})${p.verdict === 'pending' ? detail : ''}`;
}

export interface FollowOptions {
  readonly namespace?: string;
  readonly timeoutMs: number;
  readonly pollMs?: number;
  readonly out: (line: string) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/** Follows until every pod is done or failed; 0 all on `version`, 1 a failure or the timeout. */
export async function followRollout(api: VersionCluster, version: string, o: FollowOptions): Promise<number> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const end = now() + o.timeoutMs;
  const seen = new Map<string, string>();
  for (;;) {
    const rows = progressOf(await api.pods(), version, o.namespace);
    for (const r of rows) {
      const l = line(r);
      if (seen.get(r.pod) !== l) o.out(l);
      seen.set(r.pod, l);
    }
    const done = rows.filter((r) => r.verdict === 'done').length;
    const failed = rows.filter((r) => r.verdict === 'failed').length;
    if (done + failed === rows.length) {
      o.out(
        `${done} of ${rows.length} meshed pod(s) on engine ${version}${failed > 0 ? `, ${failed} rolled back or refused it` : ''}`,
      );
      return failed > 0 ? 1 : 0;
    }
    if (now() >= end) {
      o.out(
        `timed out: ${done} of ${rows.length} meshed pod(s) on engine ${version}; still pending: ${rows
          .filter((r) => r.verdict === 'pending')
          .map((r) => r.pod)
          .join(', ')}`,
      );
      return 1;
    }
    await sleep(o.pollMs ?? 2000);
  }
}
