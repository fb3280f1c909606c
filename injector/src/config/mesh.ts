/**
 * The mesh config (ConfigMap `remora-mesh-config`, key `mesh.yaml`; or `--mesh-config FILE`):
 * cluster-wide defaults for injection. Parsed once per change into a frozen object; unknown
 * fields and bad values are errors that name the field, all of them reported together.
 *
 * MESH_CONFIG below is the schema (`@remora/proxy/schema`, the policy document's too): each field
 * once, with its type, default and doc line; `MeshConfig` is derived from it. A field is added
 * with one entry there: `name: withDefault(scalar(parseX), default)` (docs/injector.md).
 */
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
import { custom, list, object, parseDocumentText, required, withDefault } from '@remora/proxy/schema';
import type { DocumentLimits, Infer, Type } from '@remora/proxy/schema';
import { MeshConfigError } from '../errors.js';
import {
  parseEnum,
  parseHostPort,
  parseImage,
  parseQuantity,
  parseRatio,
  showValue,
} from '../inject/values.js';
import { parseDnsLabel, parseSeconds, parseTrustDomain } from '@remora/proxy/values';
import type { Parsed } from '../inject/values.js';

export const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];
export const NATIVE_SIDECAR_MODES = ['true', 'false', 'auto'] as const;

/** Bounds on mesh.yaml (a ConfigMap holds at most 1 MiB). */
export const MESH_LIMITS: DocumentLimits = Object.freeze({
  maxBytes: 1024 * 1024,
  maxAliases: 50,
  maxErrors: 100,
  maxString: 4096,
  maxDepth: 64,
  maxIndent: 256,
});
const ENTRIES = { max: 1024 };

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

/**
 * A scalar read as text by one of the annotation parsers (`inject/values.ts`), so that an
 * annotation and the mesh default it overrides accept the same values; `types` are the YAML
 * scalar kinds accepted (`drainSeconds: 25` and `drainSeconds: "25"`).
 */
function scalar<T>(fn: (s: string) => Parsed<T>, types: readonly string[] = ['string']): Type<T> {
  return custom((raw, path, p) => {
    if (!types.includes(typeof raw)) {
      p.add(path, `${showValue(raw)} must be a ${types.join(' or ')}`);
      return undefined;
    }
    const r = fn(String(raw));
    if (!r.ok) p.add(path, `${showValue(raw)} ${r.reason}`);
    return r.ok ? r.value : undefined;
  });
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const BOOL = scalar(
  (s) => {
    const r = parseEnum(s, ['true', 'false'] as const);
    return r.ok ? ok(r.value === 'true') : r;
  },
  ['boolean', 'string'],
);
const QUANTITY = scalar(
  (s) => {
    const r = parseQuantity(s);
    return r.ok ? ok(r.value.text) : r;
  },
  ['string', 'number'],
);
const HOST_PORT = scalar(parseHostPort);

/** Requests and limits of a container; a partial one in mesh.yaml merges over the defaults. */
const quantities = (cpu: string, memory: string) =>
  withDefault(object({ cpu: withDefault(QUANTITY, cpu), memory: withDefault(QUANTITY, memory) }));
const resources = (requests: ReturnType<typeof quantities>, limits: ReturnType<typeof quantities>) =>
  withDefault(object({ requests, limits }));

/** An allowedProxyImages entry: a repository (no tag, no digest) or a prefix ending in `/`. */
const IMAGE_REPOSITORY = custom((v, path, p) => {
  const entry = typeof v === 'string' ? v.replace(/\/$/, '') : '';
  if (typeof v === 'string' && entry !== '' && parseImage(entry).ok && imageRepository(entry) === entry)
    return v;
  p.add(
    path,
    `${showValue(v)} must be an image repository such as "registry.example/remora-proxy" or a prefix ending in "/"`,
  );
  return undefined;
});

const POD_ANNOTATIONS = new Set<string>(Object.values(ANNOTATIONS).filter((a) => a !== ANNOTATIONS.status));

const NAMESPACE_POLICY = object({
  /** a namespace name, or `*` for every namespace */
  namespace: required(
    scalar((s) =>
      s === '*' || parseDnsLabel(s).ok ? ok(s) : { ok: false, reason: 'must be a namespace name or "*"' },
    ),
  ),
  /** full annotation names (`remora.dev/...`); a pod setting one to a widening value is rejected */
  forbidAnnotations: required(
    list(
      scalar((s) =>
        POD_ANNOTATIONS.has(s) ? ok(s) : { ok: false, reason: 'is not a Remora pod annotation' },
      ),
      ENTRIES,
    ),
  ),
});

const INJECTOR_HOST = `${INJECTOR.serviceName}.${INJECTOR.namespace}.svc`;

/** mesh.yaml: every field optional (absent or `field:` with no value keeps the default). */
export const MESH_CONFIG = object(
  {
    /** Image of both remora-init and remora-proxy. */
    proxyImage: withDefault(scalar(parseImage), `${INJECTOR.defaultProxyImageRepo}:${VERSION}`),
    /** imagePullPolicy of both injected containers. */
    imagePullPolicy: withDefault(
      scalar((s) => parseEnum(s, PULL_POLICIES)),
      'IfNotPresent',
    ),
    /**
     * Default requests/limits of remora-proxy (annotations override each value). Memory from
     * measurement (docs/deploy.md, "Sidecar memory"): the request is the largest PSS of
     * supervisor + engine at 1,000 req/s (141 MiB) rounded up to 32 Mi; the limit is twice that,
     * for an in-place upgrade's second engine and bursts. (requests, limits; each cpu, memory)
     */
    proxyResources: resources(quantities('100m', '160Mi'), quantities('1', '320Mi')),
    /** Requests/limits of remora-init. */
    initResources: resources(quantities('10m', '16Mi'), quantities('100m', '64Mi')),
    /** failure-mode of pods that do not set the annotation (DESIGN §4). */
    defaultFailureMode: withDefault(
      scalar((s) => parseEnum(s, FAILURE_MODES)),
      DEFAULT_FAILURE_MODE,
    ),
    /** mtls-mode of pods that do not set the annotation. */
    defaultMtlsMode: withDefault(
      scalar((s) => parseEnum(s, MTLS_MODES)),
      'permissive',
    ),
    /** SPIFFE trust domain of workload identities. */
    trustDomain: withDefault(scalar(parseTrustDomain), DEFAULT_TRUST_DOMAIN),
    /** Native sidecar (init container with restartPolicy Always) by default; `auto` means true. */
    nativeSidecar: withDefault(
      scalar(
        (s) => {
          const r = parseEnum(s, NATIVE_SIDECAR_MODES);
          return r.ok ? ok(r.value !== 'false') : r;
        },
        ['string', 'boolean'],
      ),
      true,
    ),
    /** Legacy mode: hold the app's start until the proxy is ready. */
    holdApp: withDefault(BOOL, true),
    /** Seconds the proxy drains on shutdown. */
    drainSeconds: withDefault(
      scalar((s) => parseSeconds(s, 3600), ['number', 'string']),
      25,
    ),
    /** Log level of the injected proxy (REMORA_LOG_LEVEL). */
    logLevel: withDefault(
      scalar((s) => parseEnum(s, LOG_LEVELS)),
      'info',
    ),
    /** Trace sampling ratio 0..1. */
    traceSampling: withDefault(scalar(parseRatio, ['number', 'string']), 0.01),
    /** host:port of the identity CA. */
    caAddress: withDefault(HOST_PORT, `${INJECTOR_HOST}:${INJECTOR.caPort}`),
    /** host:port of the discovery service; discovery and the policy stream are served on the
     *  CA's listener (injector/src/ca/server.ts). */
    discoveryAddress: withDefault(HOST_PORT, `${INJECTOR_HOST}:${INJECTOR.caPort}`),
    /** OTLP collector URL handed to the proxy; absent means no trace export. */
    otlpEndpoint: scalar((s) => {
      try {
        const u = new URL(s);
        if (u.protocol === 'http:' || u.protocol === 'https:') return ok(s);
      } catch {
        // fall through to the error below
      }
      return { ok: false, reason: 'must be an http(s) URL such as http://otel-collector:4318' };
    }),
    /** Capture IPv6 too (remora-init `--ipv6`); false passes `--no-ipv6`. */
    ipv6: withDefault(BOOL, true),
    /**
     * Image repositories `remora.dev/proxy-image` may name (the init container runs it as root
     * with NET_ADMIN): an exact repository, or a prefix ending in `/`. Default: the repository of
     * `proxyImage`.
     */
    allowedProxyImages: withDefault(list(IMAGE_REPOSITORY, { ...ENTRIES, min: 1 }), [
      INJECTOR.defaultProxyImageRepo,
    ]),
    /** Annotations a namespace's pods may not use to switch capture or strict mTLS off. */
    namespacePolicies: withDefault(list(NAMESPACE_POLICY, ENTRIES), []),
  },
  {
    nullIsAbsent: true,
    refine: (c, at) => {
      if (!at.has('allowedProxyImages')) return { ...c, allowedProxyImages: [imageRepository(c.proxyImage)] };
      if (at.problems === 0 && !imageAllowed(c.proxyImage, c.allowedProxyImages))
        at.add('proxyImage', `${showValue(c.proxyImage)} is outside allowedProxyImages`);
      return c;
    },
  },
);

export type MeshConfig = Infer<typeof MESH_CONFIG>;
export type NamespacePolicy = Infer<typeof NAMESPACE_POLICY>;
/** Requests/limits of an injected container (an annotation may leave a value unset). */
export type Resources = {
  readonly [K in keyof MeshConfig['proxyResources']]: Partial<MeshConfig['proxyResources'][K]>;
};

export const DEFAULT_MESH_CONFIG: MeshConfig = MESH_CONFIG.defaults as MeshConfig;

/** Parses mesh.yaml text; throws MeshConfigError listing every problem. Empty text = defaults. */
export function parseMeshConfig(text: string): MeshConfig {
  const r = parseDocumentText(text, MESH_CONFIG, MESH_LIMITS, DEFAULT_MESH_CONFIG);
  if (!r.ok) throw new MeshConfigError(r.errors);
  return r.value;
}
