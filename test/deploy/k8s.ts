/**
 * Helpers for the manifest tests: read the YAML under deploy/, validate objects against the
 * Kubernetes schemas (kubernetes-models: the typed model for the object's apiVersion and kind,
 * then `.validate()`), list a kustomization's own resources, and evaluate label selectors the
 * way the API server does, so selector tests check behaviour rather than spelling.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeploymentSpec } from 'kubernetes-models/apps/v1/DeploymentSpec';

type IObjectMeta = NonNullable<IDeployment['metadata']>;
export type ILabelSelector = IDeploymentSpec['selector'];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: IObjectMeta;
  [field: string]: unknown;
}

export interface YamlDoc {
  /** Path relative to the repository root, and the 1-based document number in the file. */
  readonly file: string;
  readonly index: number;
  readonly value: unknown;
}

/** Parses every document of a YAML text; throws naming the file and document on a syntax error. */
export function parseYamlDocs(text: string, file: string): YamlDoc[] {
  return parseAllDocuments(text, { uniqueKeys: true }).flatMap((d, i) => {
    if (d.errors.length > 0)
      throw new Error(`${file} document ${i + 1}: ${d.errors[0]?.message ?? 'invalid'}`);
    const value: unknown = d.toJS();
    return value === null || value === undefined ? [] : [{ file, index: i + 1, value }];
  });
}

/** Every *.yaml / *.yml file under `dir`, relative to `root`, sorted. */
export function yamlFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) out.push(relative(root, p));
    }
  };
  walk(join(root, dir));
  return out.sort();
}

export function isK8sObject(v: unknown): v is K8sObject {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o['apiVersion'] === 'string' && typeof o['kind'] === 'string';
}

type ModelClass = new (data: unknown) => { validate(): void };

/**
 * Validates an object with kubernetes-models. Returns undefined when valid, the validation error
 * otherwise, or `{ noModel }` when the package has no model for that apiVersion/kind (CRDs,
 * kustomize's own Kustomization).
 */
export async function validateObject(o: K8sObject): Promise<string | { noModel: string } | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`kubernetes-models/${o.apiVersion}`)) as Record<string, unknown>;
  } catch {
    return { noModel: `${o.apiVersion} ${o.kind}` };
  }
  const Model = mod[o.kind] as ModelClass | undefined;
  if (typeof Model !== 'function') return { noModel: `${o.apiVersion} ${o.kind}` };
  try {
    new Model(o).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The objects of a kustomization's own `resources:` files (directories are other kustomizations). */
export function kustomizationObjects(root: string, dir: string): K8sObject[] {
  const [k] = parseYamlDocs(
    readFileSync(join(root, dir, 'kustomization.yaml'), 'utf8'),
    `${dir}/kustomization.yaml`,
  );
  const resources = ((k?.value as { resources?: unknown } | undefined)?.resources ?? []) as string[];
  return resources
    .filter((r) => /\.ya?ml$/.test(r))
    .flatMap((r) => parseYamlDocs(readFileSync(join(root, dir, r), 'utf8'), `${dir}/${r}`))
    .map((d) => {
      if (!isK8sObject(d.value)) throw new Error(`${d.file} document ${d.index}: no apiVersion/kind`);
      return d.value;
    });
}

/** Does a label selector select these labels? (matchLabels and matchExpressions, API semantics.) */
export function selects(selector: ILabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    const ok =
      e.operator === 'In'
        ? has && values.includes(value ?? '')
        : e.operator === 'NotIn'
          ? !has || !values.includes(value ?? '')
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}

/** Finds exactly one object of a kind (and name); throws with what was there otherwise. */
export function one<T>(objs: readonly K8sObject[], kind: string, name?: string): T & K8sObject {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1)
    throw new Error(
      `expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length} among ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`,
    );
  return found[0] as T & K8sObject;
}
