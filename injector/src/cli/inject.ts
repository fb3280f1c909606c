/**
 * `remora inject`: the webhook's decision and patch applied to the pod templates of a manifest
 * stream. Pure over text: the caller reads the file and writes stdout/stderr, so nothing partial
 * is printed when a later document fails.
 */
import { INJECT_LABEL } from '@remora/proxy/contract';
import { parseAllDocuments, stringify } from 'yaml';
import type { MeshConfig } from '../config/mesh.js';
import { ManifestError } from '../errors.js';
import { evaluate } from '../inject/evaluate.js';
import { applyPatch } from '../inject/jsonpatch.js';
import { isRecord, podShapeErrors } from '../inject/types.js';
import type { PodLike } from '../inject/types.js';

/** Kinds whose pod template is injected, and where the template lives in each. */
const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
});

export interface InjectResult {
  /** The manifest stream to print on stdout. */
  output: string;
  /** One line per object: `injected <kind>/<name>` or `skipped <kind>/<name>: <reason>`. */
  report: string[];
}

interface ObjectResult {
  object: unknown;
  changed: boolean;
}

function describe(obj: Record<string, unknown>): string {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const name =
    typeof meta.name === 'string'
      ? meta.name
      : typeof meta.generateName === 'string'
        ? meta.generateName
        : '<unnamed>';
  return `${typeof obj.kind === 'string' ? obj.kind : '<no kind>'}/${name}`;
}

function injectObject(
  obj: unknown,
  mesh: MeshConfig,
  report: string[],
  fail: (reason: string) => never,
): ObjectResult {
  if (!isRecord(obj)) fail('a manifest document must be a map (a Kubernetes object)');
  if (typeof obj.kind !== 'string') fail('object has no kind');
  const id = describe(obj);
  if (obj.kind === 'List') {
    if (!Array.isArray(obj.items)) fail(`${id}: items must be a list`);
    const items = obj.items.map((it: unknown) => injectObject(it, mesh, report, fail));
    if (!items.some((i) => i.changed)) return { object: obj, changed: false };
    return { object: { ...obj, items: items.map((i) => i.object) }, changed: true };
  }
  const path = TEMPLATE_PATHS[obj.kind];
  if (!path) {
    report.push(`skipped ${id}: unsupported_kind`);
    return { object: obj, changed: false };
  }
  let template: unknown = obj;
  for (const key of path) template = isRecord(template) ? template[key] : undefined;
  const shape = podShapeErrors(template, path.length === 0 ? 'pod' : path.join('.'));
  if (shape.length > 0) fail(`${id}: ${shape.join('; ')}`);
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  // Manual injection: the user asked for it, so the namespace counts as enabled; pod opt-outs,
  // system namespaces and the other skip cases still apply.
  const namespace = {
    name: typeof meta.namespace === 'string' ? meta.namespace : '',
    labels: { [INJECT_LABEL]: 'enabled' },
  };
  // A controller's pods are named after it (`<name>-...`), which is what the workload name falls
  // back to when the template has no labels; a bare template has no name of its own, so lend it
  // the controller's for the decision and the patch, and take it back afterwards.
  const lent =
    path.length > 0 &&
    typeof meta.name === 'string' &&
    meta.name !== '' &&
    isRecord(template) &&
    (template.metadata === undefined ||
      (isRecord(template.metadata) &&
        template.metadata.generateName === undefined &&
        template.metadata.name === undefined));
  if (lent && isRecord(template)) {
    const m = isRecord(template.metadata) ? template.metadata : {};
    template = { ...template, metadata: { ...m, generateName: `${String(meta.name)}-` } };
  }
  const outcome = evaluate(template as PodLike, namespace, mesh);
  if (outcome.result === 'rejected') fail(`${id}: ${outcome.errors.join('; ')}`);
  if (outcome.result === 'skipped') {
    report.push(`skipped ${id}: ${outcome.reason}`);
    return { object: obj, changed: false };
  }
  const injected = applyPatch(template, outcome.patch);
  if (lent && isRecord(injected) && isRecord(injected.metadata)) delete injected.metadata.generateName;
  report.push(`injected ${id}`);
  if (path.length === 0) return { object: injected, changed: true };
  const copy = structuredClone(obj);
  let parent: Record<string, unknown> = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
  parent[path[path.length - 1] as string] = injected;
  return { object: copy, changed: true };
}

/** Injects every document of `text`; throws ManifestError naming the file and document. */
export function injectManifests(text: string, file: string, mesh: MeshConfig): InjectResult {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  if (!Array.isArray(docs)) throw new ManifestError(file, 1, 'not a YAML stream');
  const parts: string[] = [];
  const report: string[] = [];
  docs.forEach((doc, i) => {
    const n = i + 1;
    const fail = (reason: string): never => {
      throw new ManifestError(file, n, reason);
    };
    if (doc.errors.length > 0)
      fail(`invalid YAML: ${doc.errors[0]?.message.split('\n')[0] ?? 'parse error'}`);
    let obj: unknown;
    try {
      obj = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      fail(`invalid YAML: ${(err as Error).message.split('\n')[0] ?? ''}`);
    }
    if (obj === null || obj === undefined) return; // an empty document, e.g. after a trailing ---
    const r = injectObject(obj, mesh, report, fail);
    // Unchanged documents keep their comments; the separator is ours, not theirs.
    const text = r.changed
      ? stringify(r.object, { lineWidth: 0 })
      : doc.toString({ lineWidth: 0 }).replace(/^---[ \t]*\n/, '');
    parts.push(text);
  });
  return { output: parts.join('---\n'), report };
}
