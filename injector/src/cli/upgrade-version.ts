/**
 * `remora upgrade --version V`: the in-place path of DESIGN §5 (docs/upgrades.md). Sets the
 * mesh config's `engine.version` in its ConfigMap (comments and the other fields kept; the
 * result validated with the injector's own parser before it is written; replaced on the
 * resourceVersion read, so a concurrent edit is not overwritten), then follows the rollout per
 * pod from the ConfigMap `remora-engine-status` where the injector records what each proxy
 * reported. A report counts only if it came from the pod it names: the injector recorded the
 * caller's address and certificate identity, and they must be the pod's IP and service account.
 */
import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { ENGINE_STATUS_CONFIGMAP, INJECTOR } from '@remora/proxy/contract';
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

/** The status map's entry for `pod`, if it was reported from that pod (its IP, its identity). */
function reportOf(pod: V1Pod, status: Readonly<Record<string, string>>): Record<string, unknown> | undefined {
  const ns = pod.metadata?.namespace ?? '';
  const raw = status[`${ns}.${pod.metadata?.name ?? ''}`];
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const r = v as Record<string, unknown>;
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).concat(pod.status?.podIP ?? []);
  const sa = pod.spec?.serviceAccountName ?? 'default';
  const identity = typeof r.identity === 'string' ? r.identity : '';
  if (!ips.includes(String(r.ip)) || !identity.endsWith(`/ns/${ns}/sa/${sa}`)) return undefined;
  return r;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Each meshed pod (in `namespace`, if given) and where it stands toward `version`. */
export function progressOf(
  pods: readonly V1Pod[],
  status: Readonly<Record<string, string>>,
  version: string,
  namespace?: string,
): PodProgress[] {
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
      const r = reportOf(p, status);
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

async function statusMap(api: VersionCluster): Promise<Record<string, string>> {
  try {
    return (await api.configMap(INJECTOR.namespace, ENGINE_STATUS_CONFIGMAP)).data ?? {};
  } catch (err) {
    if ((err as { code?: number }).code === 404) return {}; // no proxy reported yet
    throw err;
  }
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
    const rows = progressOf(await api.pods(), await statusMap(api), version, o.namespace);
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
