/**
 * The mesh config (ConfigMap `remora-mesh-config`, key `mesh.yaml`; or `--mesh-config FILE`):
 * cluster-wide defaults for injection. Parsed once per change into a frozen object; unknown
 * fields and bad values are errors that name the field, all of them reported together.
 */
import { parse as parseYaml } from 'yaml';
import {
  ANNOTATIONS,
  DEFAULT_FAILURE_MODE,
  DEFAULT_TRUST_DOMAIN,
  FAILURE_MODES,
  INJECTOR,
  LOG_LEVELS,
  MTLS_MODES,
  VERSION,
} from '@remora/proxy/contract';
import type { FailureMode, LogLevel, MtlsMode } from '@remora/proxy/contract';
import { MeshConfigError } from '../errors.js';
import {
  parseEnum,
  parseHostPort,
  parseImage,
  parseQuantity,
  parseRatio,
  parseSeconds,
  showValue,
} from '../inject/values.js';
import type { Parsed } from '../inject/values.js';
import { isRecord } from '../inject/types.js';

export interface ResourceList {
  cpu?: string;
  memory?: string;
}
export interface Resources {
  requests: ResourceList;
  limits: ResourceList;
}

export const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];
export const NATIVE_SIDECAR_MODES = ['true', 'false', 'auto'] as const;

export interface MeshConfig {
  /** Image of both remora-init and remora-proxy. */
  proxyImage: string;
  /** imagePullPolicy of both injected containers. */
  imagePullPolicy: PullPolicy;
  /** Default requests/limits of remora-proxy (annotations override each value). */
  proxyResources: Resources;
  /** Requests/limits of remora-init. */
  initResources: Resources;
  /** failure-mode of pods that do not set the annotation (DESIGN §4). */
  defaultFailureMode: FailureMode;
  /** mtls-mode of pods that do not set the annotation. */
  defaultMtlsMode: MtlsMode;
  /** SPIFFE trust domain of workload identities. */
  trustDomain: string;
  /** Native sidecar (init container with restartPolicy Always) by default; `auto` means true. */
  nativeSidecar: boolean;
  /** Legacy mode: hold the app's start until the proxy is ready. */
  holdApp: boolean;
  /** Seconds the proxy drains on shutdown. */
  drainSeconds: number;
  logLevel: LogLevel;
  /** Trace sampling ratio 0..1. */
  traceSampling: number;
  /** host:port of the identity CA. */
  caAddress: string;
  /** host:port of the discovery service. */
  discoveryAddress: string;
  /** OTLP collector URL handed to the proxy; absent means no trace export. */
  otlpEndpoint?: string;
  /** Capture IPv6 too (remora-init `--ipv6`); false passes `--no-ipv6`. */
  ipv6: boolean;
  /**
   * Image repositories `remora.dev/proxy-image` may name (the init container runs it as root
   * with NET_ADMIN): an exact repository, or a prefix ending in `/`. Default: the repository of
   * `proxyImage`.
   */
  allowedProxyImages: readonly string[];
  /** Annotations a namespace's pods may not use to switch capture or strict mTLS off. */
  namespacePolicies: readonly NamespacePolicy[];
  /** The engine version proxies run, upgraded in place by the control plane (docs/upgrades.md). */
  engine: EngineSpec;
}

export interface EngineSpec {
  /** a bundle name (`<REMORA_ENGINE_BUNDLE_DIR>/<version>.tar.gz`) or `builtin` (the image's) */
  readonly version: string;
  /** `sha256:<hex>` the bundle must have; absent: whatever the injector's file hashes to */
  readonly digest?: string;
  readonly rollout: {
    /** at most this many pods upgrade at a time (upgrade leases) */
    readonly maxConcurrent: number;
    /** a lease not released by then is freed (a proxy that died mid-upgrade) */
    readonly leaseSeconds: number;
  };
}

/** The version name of the engine each image ships (proxy/src/supervisor/supervisor.ts). */
export const BUILTIN_ENGINE = 'builtin';
const ENGINE_VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface NamespacePolicy {
  /** a namespace name, or `*` for every namespace */
  readonly namespace: string;
  /** full annotation names (`remora.dev/...`); a pod setting one to a widening value is rejected */
  readonly forbidAnnotations: readonly string[];
}

/** `registry[:port]/path` without tag and digest: what an allow-list entry compares with. */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0] as string;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/** Whether `image` is in one of `allowed`: the same repository, or under a `…/` prefix. */
export function imageAllowed(image: string, allowed: readonly string[]): boolean {
  const repo = imageRepository(image);
  return allowed.some((a) => (a.endsWith('/') ? repo.startsWith(a) : repo === a));
}

const INJECTOR_HOST = `${INJECTOR.serviceName}.${INJECTOR.namespace}.svc`;

export const DEFAULT_MESH_CONFIG: MeshConfig = deepFreeze({
  proxyImage: `${INJECTOR.defaultProxyImageRepo}:${VERSION}`,
  imagePullPolicy: 'IfNotPresent',
  // Memory from measurement (docs/deploy.md, "Sidecar memory"): the request is the largest PSS of
  // supervisor + engine at 1,000 req/s (141 MiB) rounded up to 32 Mi; the limit is twice that, for
  // an in-place upgrade's second engine and bursts.
  proxyResources: { requests: { cpu: '100m', memory: '160Mi' }, limits: { cpu: '1', memory: '320Mi' } },
  initResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
  defaultFailureMode: DEFAULT_FAILURE_MODE,
  defaultMtlsMode: 'permissive',
  trustDomain: DEFAULT_TRUST_DOMAIN,
  nativeSidecar: true,
  holdApp: true,
  drainSeconds: 25,
  logLevel: 'info',
  traceSampling: 0.01,
  caAddress: `${INJECTOR_HOST}:${INJECTOR.caPort}`,
  // Discovery and the policy stream are served on the CA's listener (injector/src/ca/server.ts).
  discoveryAddress: `${INJECTOR_HOST}:${INJECTOR.caPort}`,
  ipv6: true,
  allowedProxyImages: [INJECTOR.defaultProxyImageRepo],
  namespacePolicies: [],
  engine: { version: BUILTIN_ENGINE, rollout: { maxConcurrent: 1, leaseSeconds: 120 } },
});

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

type FieldParser = (raw: unknown, field: string, errors: string[]) => unknown;

function scalar<T>(fn: (s: string) => Parsed<T>, types: readonly string[] = ['string']): FieldParser {
  return (raw, field, errors) => {
    if (!types.includes(typeof raw)) {
      errors.push(`${field}: ${showValue(raw)} must be a ${types.join(' or ')}`);
      return undefined;
    }
    const r = fn(String(raw));
    if (!r.ok) errors.push(`${field}: ${showValue(raw)} ${r.reason}`);
    return r.ok ? r.value : undefined;
  };
}

const resourcesParser: FieldParser = (raw, field, errors) => {
  if (!isRecord(raw)) {
    errors.push(`${field} must be a map with requests and limits`);
    return undefined;
  }
  const out: Resources = { requests: {}, limits: {} };
  for (const [k, v] of Object.entries(raw)) {
    if (k !== 'requests' && k !== 'limits') {
      errors.push(`${field}.${k}: unknown field (expected requests, limits)`);
      continue;
    }
    if (!isRecord(v)) {
      errors.push(`${field}.${k} must be a map`);
      continue;
    }
    for (const [r, q] of Object.entries(v)) {
      if (r !== 'cpu' && r !== 'memory') {
        errors.push(`${field}.${k}.${r}: unknown field (expected cpu, memory)`);
        continue;
      }
      const p = scalar(parseQuantity, ['string', 'number'])(q, `${field}.${k}.${r}`, errors) as
        { text: string } | undefined;
      if (p) out[k][r] = p.text;
    }
  }
  return out;
};

const allowedImagesParser: FieldParser = (raw, field, errors) => {
  if (!Array.isArray(raw) || raw.length === 0) {
    errors.push(`${field} must be a non-empty list of image repositories`);
    return undefined;
  }
  const out: string[] = [];
  raw.forEach((v: unknown, i) => {
    const entry = typeof v === 'string' ? v.replace(/\/$/, '') : '';
    // A repository (no tag, no digest) that would parse as an image reference by itself.
    if (entry === '' || !parseImage(entry).ok || imageRepository(entry) !== entry)
      errors.push(
        `${field}[${i}]: ${showValue(v)} must be an image repository such as "registry.example/remora-proxy" or a prefix ending in "/"`,
      );
    else out.push(v as string);
  });
  return out;
};

const namespacePoliciesParser: FieldParser = (raw, field, errors) => {
  if (!Array.isArray(raw)) {
    errors.push(`${field} must be a list of {namespace, forbidAnnotations}`);
    return undefined;
  }
  const known = new Set<string>(Object.values(ANNOTATIONS));
  known.delete(ANNOTATIONS.status);
  const out: NamespacePolicy[] = [];
  raw.forEach((p: unknown, i) => {
    const where = `${field}[${i}]`;
    if (!isRecord(p)) {
      errors.push(`${where} must be a map with namespace and forbidAnnotations`);
      return;
    }
    for (const k of Object.keys(p))
      if (k !== 'namespace' && k !== 'forbidAnnotations')
        errors.push(`${where}.${k}: unknown field (expected namespace, forbidAnnotations)`);
    const ns = p.namespace;
    if (typeof ns !== 'string' || !(ns === '*' || /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(ns))) {
      errors.push(`${where}.namespace: ${showValue(ns)} must be a namespace name or "*"`);
      return;
    }
    const list = p.forbidAnnotations;
    if (!Array.isArray(list)) {
      errors.push(`${where}.forbidAnnotations must be a list of annotation names`);
      return;
    }
    const names: string[] = [];
    for (const a of list as unknown[]) {
      if (typeof a === 'string' && known.has(a)) names.push(a);
      else errors.push(`${where}.forbidAnnotations: ${showValue(a)} is not a Remora pod annotation`);
    }
    out.push({ namespace: ns, forbidAnnotations: names });
  });
  return out;
};

const engineParser: FieldParser = (raw, field, errors) => {
  if (!isRecord(raw)) {
    errors.push(`${field} must be a map with version (and digest, rollout)`);
    return undefined;
  }
  const before = errors.length;
  const def = DEFAULT_MESH_CONFIG.engine;
  let version = def.version;
  let digest: string | undefined;
  const rollout = { ...def.rollout };
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'version') {
      if (typeof v === 'string' && ENGINE_VERSION.test(v)) version = v;
      else
        errors.push(
          `${field}.version: ${showValue(v)} must be a bundle name ([A-Za-z0-9._-], no slashes) or "builtin"`,
        );
    } else if (k === 'digest') {
      if (typeof v === 'string' && /^sha256:[0-9a-f]{64}$/.test(v)) digest = v;
      else errors.push(`${field}.digest: ${showValue(v)} must be sha256:<64 lower-case hex digits>`);
    } else if (k === 'rollout') {
      if (!isRecord(v)) {
        errors.push(`${field}.rollout must be a map with maxConcurrent, leaseSeconds`);
        continue;
      }
      for (const [rk, rv] of Object.entries(v)) {
        const n = typeof rv === 'number' ? rv : NaN;
        if (rk === 'maxConcurrent') {
          if (Number.isInteger(n) && n >= 1 && n <= 10_000) rollout.maxConcurrent = n;
          else errors.push(`${field}.rollout.maxConcurrent: ${showValue(rv)} must be an integer 1..10000`);
        } else if (rk === 'leaseSeconds') {
          if (Number.isInteger(n) && n >= 10 && n <= 3600) rollout.leaseSeconds = n;
          else errors.push(`${field}.rollout.leaseSeconds: ${showValue(rv)} must be an integer 10..3600`);
        } else errors.push(`${field}.rollout.${rk}: unknown field (expected maxConcurrent, leaseSeconds)`);
      }
    } else errors.push(`${field}.${k}: unknown field (expected version, digest, rollout)`);
  }
  if (digest !== undefined && version === BUILTIN_ENGINE)
    errors.push(`${field}.digest: the builtin engine has no bundle to pin`);
  if (errors.length > before) return undefined;
  return { version, ...(digest !== undefined ? { digest } : {}), rollout } satisfies EngineSpec;
};

const FIELDS: Record<keyof MeshConfig, FieldParser> = {
  proxyImage: scalar(parseImage),
  imagePullPolicy: scalar((s) => parseEnum(s, PULL_POLICIES)),
  proxyResources: resourcesParser,
  initResources: resourcesParser,
  defaultFailureMode: scalar((s) => parseEnum(s, FAILURE_MODES)),
  defaultMtlsMode: scalar((s) => parseEnum(s, MTLS_MODES)),
  trustDomain: scalar((s) =>
    /^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/.test(s)
      ? { ok: true, value: s }
      : { ok: false, reason: 'must be a lower-case DNS-like trust domain' },
  ),
  nativeSidecar: scalar(
    (s) => {
      const r = parseEnum(s, NATIVE_SIDECAR_MODES);
      return r.ok ? { ok: true, value: r.value !== 'false' } : r;
    },
    ['string', 'boolean'],
  ),
  holdApp: scalar((s) => parseEnum(s, ['true', 'false'] as const) as Parsed<string>, ['boolean', 'string']),
  drainSeconds: scalar((s) => parseSeconds(s, 3600), ['number', 'string']),
  logLevel: scalar((s) => parseEnum(s, LOG_LEVELS)),
  traceSampling: scalar(parseRatio, ['number', 'string']),
  caAddress: scalar(parseHostPort),
  discoveryAddress: scalar(parseHostPort),
  otlpEndpoint: scalar((s) => {
    try {
      const u = new URL(s);
      if (u.protocol === 'http:' || u.protocol === 'https:') return { ok: true, value: s };
    } catch {
      // fall through to the error below
    }
    return { ok: false, reason: 'must be an http(s) URL such as http://otel-collector:4318' };
  }),
  ipv6: scalar((s) => parseEnum(s, ['true', 'false'] as const) as Parsed<string>, ['boolean', 'string']),
  allowedProxyImages: allowedImagesParser,
  namespacePolicies: namespacePoliciesParser,
  engine: engineParser,
};

const BOOLEAN_FIELDS = new Set<string>(['holdApp', 'ipv6']);

/** Parses mesh.yaml text; throws MeshConfigError listing every problem. Empty text = defaults. */
export function parseMeshConfig(text: string): MeshConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: 50 });
  } catch (err) {
    throw new MeshConfigError([`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (doc === null || doc === undefined) return DEFAULT_MESH_CONFIG;
  if (!isRecord(doc)) throw new MeshConfigError(['the document must be a map of fields']);
  const errors: string[] = [];
  const out: Record<string, unknown> = { ...DEFAULT_MESH_CONFIG };
  for (const [key, raw] of Object.entries(doc)) {
    const parser = (FIELDS as Record<string, FieldParser | undefined>)[key];
    if (!parser) {
      errors.push(`${key}: unknown field (known: ${Object.keys(FIELDS).join(', ')})`);
      continue;
    }
    if (raw === null) continue; // `field:` with no value keeps the default
    const value = parser(raw, key, errors);
    if (value === undefined) continue;
    if (key === 'proxyResources' || key === 'initResources') {
      const base = DEFAULT_MESH_CONFIG[key];
      const r = value as Resources;
      out[key] = { requests: { ...base.requests, ...r.requests }, limits: { ...base.limits, ...r.limits } };
    } else {
      out[key] = BOOLEAN_FIELDS.has(key) ? value === 'true' : value;
    }
  }
  if (!('allowedProxyImages' in doc) || doc.allowedProxyImages === null)
    out.allowedProxyImages = [imageRepository(out.proxyImage as string)];
  else if (
    errors.length === 0 &&
    !imageAllowed(out.proxyImage as string, out.allowedProxyImages as readonly string[])
  )
    errors.push(`proxyImage: ${showValue(out.proxyImage)} is outside allowedProxyImages`);
  if (errors.length > 0) throw new MeshConfigError(errors);
  return deepFreeze(out as unknown as MeshConfig);
}
