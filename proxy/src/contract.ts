/**
 * The external contract of Remora (DESIGN.md §2, §6, §7): ports, identities, annotation,
 * label and environment-variable names, metric names. This file is the one source of truth;
 * the proxy, the init container, the injector, the manifests' tests and the docs all read it.
 * Changing a value here changes the product's contract: update DESIGN.md in the same change.
 */

/** Ports inside a meshed pod (DESIGN §2). */
export const PORTS = Object.freeze({
  /** Outbound capture (iptables OUTPUT → REDIRECT), bound on 127.0.0.1. */
  outbound: 15001,
  /** Inbound capture (PREROUTING → REDIRECT), bound on 0.0.0.0. */
  inbound: 15006,
  /** Mesh tunnel (mTLS between proxies); never redirected. */
  tunnel: 15008,
  /** Health: /healthz/ready, /healthz/live, /app-health/...; never redirected. */
  health: 15020,
  /** Prometheus metrics at /metrics; never redirected. */
  metrics: 15090,
  /** Admin API, bound on 127.0.0.1 only; never reachable from off the pod. */
  admin: 15000,
});

/** The proxy's UID and GID: its own traffic is excluded from capture by both. */
export const PROXY_UID = 1337;
export const PROXY_GID = 1337;

/**
 * Source address the proxy's inbound side binds when it delivers to the pod IP instead of
 * 127.0.0.1 (an app bound only to its pod IP). remora-init never captures traffic from it over
 * lo, which is what keeps that delivery from looping back into the inbound listener.
 */
export const INBOUND_PASSTHROUGH_SOURCE = Object.freeze({ ipv4: '127.0.0.6', ipv6: '::6' });

/**
 * The data listeners the supervisor binds and hands to each engine as fds (supervisor/ipc.ts).
 * `inbound6`/`outbound6`/`tunnel6` are the IPv6 twins of the capture and tunnel listeners
 * (remora-init redirects IPv6 too; peers in an IPv6 or dual-stack cluster dial
 * `[podIPv6]:15008`); they exist only where the host has IPv6.
 */
export const SUPERVISED_LISTENER_NAMES = Object.freeze([
  'inbound',
  'outbound',
  'tunnel',
  'inbound6',
  'outbound6',
  'tunnel6',
] as const);
export type SupervisedListenerName = (typeof SUPERVISED_LISTENER_NAMES)[number];

/** Every listener of the engine by name (listeners.ts): the data listeners plus the control ones. */
export const LISTENER_NAMES = Object.freeze([
  ...SUPERVISED_LISTENER_NAMES,
  'health',
  'metrics',
  'admin',
] as const);
export type ListenerName = (typeof LISTENER_NAMES)[number];

/** Container names the injector adds. */
export const INIT_CONTAINER_NAME = 'remora-init';
export const PROXY_CONTAINER_NAME = 'remora-proxy';

/** Label / annotation prefix. */
export const PREFIX = 'remora.dev/';

/** Namespace label that turns injection on (value `enabled`). */
export const INJECT_LABEL = 'remora.dev/inject';

/**
 * Control-plane revision (DESIGN §5, two injectors side by side): on the injector's objects, and
 * on a namespace to pick a revision other than the default one (docs/deploy.md, upgrades).
 */
export const REVISION_LABEL = 'remora.dev/rev';

/** Pod annotations (DESIGN §6). */
export const ANNOTATIONS = Object.freeze({
  inject: 'remora.dev/inject',
  status: 'remora.dev/status',
  failureMode: 'remora.dev/failure-mode',
  mtlsMode: 'remora.dev/mtls-mode',
  nativeSidecar: 'remora.dev/native-sidecar',
  holdApp: 'remora.dev/hold-app',
  drainSeconds: 'remora.dev/drain-seconds',
  excludeInboundPorts: 'remora.dev/exclude-inbound-ports',
  includeInboundPorts: 'remora.dev/include-inbound-ports',
  excludeOutboundPorts: 'remora.dev/exclude-outbound-ports',
  excludeOutboundCidrs: 'remora.dev/exclude-outbound-cidrs',
  includeOutboundCidrs: 'remora.dev/include-outbound-cidrs',
  proxyCpu: 'remora.dev/proxy-cpu',
  proxyMemory: 'remora.dev/proxy-memory',
  proxyCpuLimit: 'remora.dev/proxy-cpu-limit',
  proxyMemoryLimit: 'remora.dev/proxy-memory-limit',
  proxyImage: 'remora.dev/proxy-image',
  logLevel: 'remora.dev/log-level',
  traceSampling: 'remora.dev/trace-sampling',
  rewriteProbes: 'remora.dev/rewrite-probes',
  /**
   * Inbound ports delivered to the app on 127.0.0.1 instead of the pod IP (an app that only
   * listens on loopback and wants mesh traffic there); every other port goes to the pod IP.
   */
  localhostInboundPorts: 'remora.dev/localhost-inbound-ports',
  /**
   * `true`: POST /quitquitquit works without the admin token (legacy-ordering Jobs whose app
   * stops its sidecar); off by default, since then anything in the pod can stop the proxy.
   */
  quitWithoutToken: 'remora.dev/quit-without-token',
  /** The app's ports that speak opaque TCP (`3306,5432,9000-9010`): no protocol detection. */
  opaquePorts: 'remora.dev/opaque-ports',
});

/** Opt-outs of other meshes honoured for people migrating (DESIGN §6). */
export const FOREIGN_OPT_OUTS = Object.freeze([
  { key: 'sidecar.istio.io/inject', value: 'false' },
  { key: 'linkerd.io/inject', value: 'disabled' },
]);

/** Namespaces never injected. */
export const SYSTEM_NAMESPACES = Object.freeze(['kube-system', 'kube-public', 'kube-node-lease']);

export const FAILURE_MODES = Object.freeze(['degrade', 'fail-closed', 'restart'] as const);
export type FailureMode = (typeof FAILURE_MODES)[number];
export const DEFAULT_FAILURE_MODE: FailureMode = 'fail-closed';

export const MTLS_MODES = Object.freeze(['permissive', 'strict'] as const);
export type MtlsMode = (typeof MTLS_MODES)[number];

/**
 * Upstream HTTP/1.1 clients the proxy can forward with (REMORA_UPSTREAM_CLIENT): `codec` (the
 * default, http1/pool.ts) or `undici` (the previous client, a fallback for one release).
 */
export const UPSTREAM_CLIENTS = Object.freeze(['codec', 'undici'] as const);
export type UpstreamClient = (typeof UPSTREAM_CLIENTS)[number];
/** The HTTP/1.1 server stage of the data listeners (REMORA_HTTP_SERVER). */
export const HTTP_SERVERS = Object.freeze(['codec', 'node'] as const);
export type HttpServer = (typeof HTTP_SERVERS)[number];

/** Environment variables read by remora-proxy (parsed in one place: proxy/src/config). */
export const ENV = Object.freeze({
  inboundPort: 'REMORA_INBOUND_PORT',
  outboundPort: 'REMORA_OUTBOUND_PORT',
  tunnelPort: 'REMORA_TUNNEL_PORT',
  healthPort: 'REMORA_HEALTH_PORT',
  metricsPort: 'REMORA_METRICS_PORT',
  adminPort: 'REMORA_ADMIN_PORT',
  inboundTarget: 'REMORA_INBOUND_TARGET',
  outboundTarget: 'REMORA_OUTBOUND_TARGET',
  configFile: 'REMORA_CONFIG_FILE',
  logLevel: 'REMORA_LOG_LEVEL',
  drainSeconds: 'REMORA_DRAIN_SECONDS',
  failureMode: 'REMORA_FAILURE_MODE',
  mtlsMode: 'REMORA_MTLS_MODE',
  adminTokenFile: 'REMORA_ADMIN_TOKEN_FILE',
  appProbes: 'REMORA_APP_PROBES',
  podName: 'REMORA_POD_NAME',
  podNamespace: 'REMORA_POD_NAMESPACE',
  podIp: 'REMORA_POD_IP',
  serviceAccount: 'REMORA_SERVICE_ACCOUNT',
  traceSampling: 'REMORA_TRACE_SAMPLING',
  workload: 'REMORA_WORKLOAD',
  discoveryAddress: 'REMORA_DISCOVERY_ADDRESS',
  caAddress: 'REMORA_CA_ADDRESS',
  trustDomain: 'REMORA_TRUST_DOMAIN',
  tokenFile: 'REMORA_TOKEN_FILE',
  /** PEM file of the mesh trust bundle (roots the proxy trusts for the CA and for peers). */
  caBundleFile: 'REMORA_CA_BUNDLE_FILE',
  /** Static discovery file (JSON) read by the proxy directly, outside Kubernetes. */
  discoveryFile: 'REMORA_DISCOVERY_FILE',
  /** Access log on/off (`on` | `off`, default `on`). */
  accessLog: 'REMORA_ACCESS_LOG',
  /** Fraction 0..1 of requests/connections written to the access log (default 1). */
  accessLogSample: 'REMORA_ACCESS_LOG_SAMPLE',
  /** Distinct peers per direction with their own metric series (default 100; docs/telemetry.md). */
  metricsMaxPeers: 'REMORA_METRICS_MAX_PEERS',
  /** Overrides every listener's bind address (tests, explicit mode on one interface). */
  bindHost: 'REMORA_BIND_HOST',
  /** How long protocol detection waits for the client's first bytes, in milliseconds. */
  detectTimeoutMs: 'REMORA_DETECT_TIMEOUT_MS',
  /** Largest HTTP/1 request head (request line + headers) accepted, in bytes. */
  maxHeaderBytes: 'REMORA_MAX_HEADER_BYTES',
  /** Most header fields accepted in one HTTP/1 request. */
  maxHeaders: 'REMORA_MAX_HEADERS',
  /** Directory of engine versions for in-place upgrades: `<root>/<version>/engine.js`. */
  engineBundleRoot: 'REMORA_ENGINE_BUNDLE_ROOT',
  /** fail-closed/restart: seconds connections wait for an engine before the supervisor resets them. */
  engineWaitSeconds: 'REMORA_ENGINE_WAIT_SECONDS',
  /** Seconds a new engine has to report ready before it is abandoned (restart, rollback). */
  engineReadySeconds: 'REMORA_ENGINE_READY_SECONDS',
  /** restart: seconds without a ready engine before liveness fails. */
  restartGraceSeconds: 'REMORA_RESTART_GRACE_SECONDS',
  /** `on`: keep a pre-forked engine waiting, so a crashed one is replaced in milliseconds. */
  engineStandby: 'REMORA_ENGINE_STANDBY',
  /** Policy document (YAML or JSON, docs/policy.md) read from a file and re-read on change. */
  policyFile: 'REMORA_POLICY_FILE',
  /** Upstream HTTP/1.1 client: `codec` (default, proxy/src/http1/pool.ts) or `undici`. */
  upstreamClient: 'REMORA_UPSTREAM_CLIENT',
  /**
   * `on`: HTTP/1.1 requests to meshed endpoints ride the one HTTP/2 connection per peer proxy
   * inside the tunnel (`x-remora-orig-proto`, docs/grpc.md) instead of pooled HTTP/1.1 tunnels.
   */
  meshHttp1OverH2: 'REMORA_MESH_HTTP1_OVER_H2',
  /** Downstream HTTP/1.1 server stage: `codec` (the project's, http/h1server.ts) or `node` (node:http). */
  httpServer: 'REMORA_HTTP_SERVER',
  /** Comma-separated inbound ports delivered to 127.0.0.1 instead of REMORA_POD_IP (DESIGN §3). */
  localhostInboundPorts: 'REMORA_LOCALHOST_INBOUND_PORTS',
  /** `on`: POST /quitquitquit needs no admin token (annotation remora.dev/quit-without-token). */
  quitWithoutToken: 'REMORA_QUIT_WITHOUT_TOKEN',
  /** Most concurrent downstream connections per data listener; the next ones are closed at accept. */
  maxConnections: 'REMORA_MAX_CONNECTIONS',
  /** How long a client may take to send a whole HTTP/1 request head, in ms: then 408 and close. */
  requestHeadTimeoutMs: 'REMORA_REQUEST_HEAD_TIMEOUT_MS',
  /**
   * The app's ports that speak opaque TCP (no detection; server-speaks-first protocols), from
   * the pod annotation `remora.dev/opaque-ports`: `3306,5432,9000-9010`.
   */
  opaquePorts: 'REMORA_OPAQUE_PORTS',
  /** The app's ports declared HTTP: what is not HTTP/1 is refused, never relayed. */
  httpPorts: 'REMORA_HTTP_PORTS',
  /** Destination ports the app dials that speak opaque TCP (no detection). */
  outboundOpaquePorts: 'REMORA_OUTBOUND_OPAQUE_PORTS',
  /** Destination ports declared HTTP: what is not HTTP/1 is refused, never relayed. */
  outboundHttpPorts: 'REMORA_OUTBOUND_HTTP_PORTS',
});

/**
 * The standard OpenTelemetry SDK variables remora-proxy honours (parsed in proxy/src/config,
 * like every other variable; the SDK's own env fallbacks are never relied upon).
 */
export const OTEL_ENV = Object.freeze({
  endpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT',
  tracesEndpoint: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  headers: 'OTEL_EXPORTER_OTLP_HEADERS',
  timeout: 'OTEL_EXPORTER_OTLP_TIMEOUT',
  protocol: 'OTEL_EXPORTER_OTLP_PROTOCOL',
  serviceName: 'OTEL_SERVICE_NAME',
  resourceAttributes: 'OTEL_RESOURCE_ATTRIBUTES',
  sdkDisabled: 'OTEL_SDK_DISABLED',
  tracesExporter: 'OTEL_TRACES_EXPORTER',
  sampler: 'OTEL_TRACES_SAMPLER',
  samplerArg: 'OTEL_TRACES_SAMPLER_ARG',
  bspScheduleDelay: 'OTEL_BSP_SCHEDULE_DELAY',
  bspExportTimeout: 'OTEL_BSP_EXPORT_TIMEOUT',
  bspMaxQueueSize: 'OTEL_BSP_MAX_QUEUE_SIZE',
  bspMaxExportBatchSize: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
});

/** Metric names (DESIGN §7). All Remora metrics are prefixed `remora_`. */
export const METRICS = Object.freeze({
  requestsTotal: 'remora_requests_total',
  requestDuration: 'remora_request_duration_seconds',
  tcpOpened: 'remora_tcp_connections_opened_total',
  tcpActive: 'remora_tcp_connections_active',
  tcpBytes: 'remora_tcp_bytes_total',
  policyDenials: 'remora_policy_denials_total',
  tlsHandshakeFailures: 'remora_tls_handshake_failures_total',
  proxyDegraded: 'remora_proxy_degraded',
  engineRestarts: 'remora_engine_restarts_total',
  buildInfo: 'remora_build_info',
  certExpiry: 'remora_cert_expiry_seconds',
  /** Peers that got the shared `overflow` labels (the cap of distinct peers was reached). */
  peerOverflow: 'remora_metrics_peer_overflow_total',
  /** Spans dropped before export (queue full, export failed or timed out). */
  traceSpansDropped: 'remora_trace_spans_dropped_total',
  /** Spans the collector accepted. */
  traceSpansExported: 'remora_trace_spans_exported_total',
  /** Requests or connections an `audit` rule (or default) let through and logged. */
  policyAudits: 'remora_policy_audits_total',
  /** Policy documents received, by result (`accepted` | `rejected`). */
  policyUpdates: 'remora_policy_updates_total',
  /** Requests answered 429 by the local rate limit. */
  rateLimited: 'remora_rate_limited_total',
  /** Retries sent upstream, by direction and reason. */
  retries: 'remora_retries_total',
  /** Retries not sent because the retry budget was spent. */
  retryBudgetExhausted: 'remora_retry_budget_exhausted_total',
  /** Requests refused because a circuit breaker limit was reached, by limit. */
  circuitOpen: 'remora_circuit_open_total',
  /** Endpoints ejected by outlier detection, by reason. */
  outlierEjections: 'remora_outlier_ejections_total',
  /** Endpoints ejected right now. */
  outlierEjected: 'remora_outlier_ejected',
  /** Connections closed at accept because the listener was at REMORA_MAX_CONNECTIONS. */
  connectionsOverCap: 'remora_tcp_connections_over_cap_total',
});

/** Supervisor-only metrics (beyond DESIGN §7's): what the stand-in did. */
export const SUPERVISOR_METRICS = Object.freeze({
  relayed: 'remora_supervisor_relayed_connections_total',
  reset: 'remora_supervisor_reset_connections_total',
  generation: 'remora_engine_generation',
  /** snapshot requests sent to engines over IPC (scrapes coalesce into few of them) */
  snapshotRequests: 'remora_supervisor_snapshot_requests_total',
});

/** Audience of the projected service-account token the proxy presents to the CA. */
export const TOKEN_AUDIENCE = 'remora';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** Version of this build; written into remora.dev/status and remora_build_info. */
export const VERSION = '0.1.0';

/** Log levels every Remora component accepts (pino's names). */
export const LOG_LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const);
export type LogLevel = (typeof LOG_LEVELS)[number];
/**
 * What REMORA_LOG_LEVEL accepts: the levels plus `silent` (tests, benchmarks). An annotation,
 * the mesh config and POST /logging name only LOG_LEVELS: a pod cannot silence its proxy's
 * security events.
 */
export const PROXY_LOG_LEVELS = Object.freeze([...LOG_LEVELS, 'silent'] as const);
export type ProxyLogLevel = (typeof PROXY_LOG_LEVELS)[number];

/** Standard OpenTelemetry variable naming the OTLP collector (DESIGN §7). */
export const OTLP_ENDPOINT_ENV = 'OTEL_EXPORTER_OTLP_ENDPOINT';

/** HTTP paths of the proxy's health listener (port 15020, DESIGN §2). */
export const HEALTH_PATHS = Object.freeze({
  ready: '/healthz/ready',
  live: '/healthz/live',
  /** Rewritten app probes: `/app-health/<container>/<livez|readyz|startupz>`. */
  appHealthPrefix: '/app-health/',
});

/** HTTP paths of the admin listener (port 15000, DESIGN §2). */
export const ADMIN_PATHS = Object.freeze({
  config: '/config',
  /** POST, bearer token: drain and stop serving; answers when the engines have drained. */
  drain: '/drain',
  /** POST, bearer token: in-place engine upgrade (DESIGN §5). */
  upgrade: '/upgrade',
  /**
   * POST, bearer token: exit promptly. Without the token only for a pod that asks
   * (REMORA_QUIT_WITHOUT_TOKEN, legacy-ordering Jobs whose app stops its sidecar).
   */
  quit: '/quitquitquit',
  logging: '/logging',
});

/** Path of the Prometheus endpoint on the metrics port. */
export const METRICS_PATH = '/metrics';

/** Paths inside the injected containers. */
export const POD_PATHS = Object.freeze({
  /** Directory of the projected service-account token (audience TOKEN_AUDIENCE). */
  tokenDir: '/var/run/secrets/remora/token',
  /** The token file itself (value of REMORA_TOKEN_FILE). */
  tokenFile: '/var/run/secrets/remora/token/token',
  /** emptyDir for the proxy's runtime files (read-only root file system). */
  runDir: '/var/run/remora',
  /** Default REMORA_ADMIN_TOKEN_FILE: bearer token for /upgrade and /drain, mode 0600. */
  adminTokenFile: '/var/run/remora/admin-token',
  /** Directory of the mesh trust bundle (ConfigMap TRUST_BUNDLE in the pod's namespace). */
  trustBundleDir: '/var/run/secrets/remora/trust',
  /** The trust bundle file (value of REMORA_CA_BUNDLE_FILE in injected pods). */
  trustBundleFile: '/var/run/secrets/remora/trust/ca.crt',
  /** Where Kubernetes mounts the default API token; shadowed in the injected containers. */
  defaultSaTokenDir: '/var/run/secrets/kubernetes.io/serviceaccount',
  /** emptyDir the supervisor fetches engine bundles into (REMORA_ENGINE_BUNDLE_ROOT, docs/upgrades.md). */
  engineBundleRoot: '/var/lib/remora/engines',
});

/** The injector's own deployment contract (shared with deploy/ and its tests). */
export const INJECTOR = Object.freeze({
  namespace: 'remora-system',
  serviceName: 'remora-injector',
  port: 8443,
  /** Port of the Service in front of the webhook listener (what clients in the cluster dial). */
  servicePort: 443,
  injectPath: '/inject',
  webhookConfigName: 'remora-injector',
  meshConfigMap: 'remora-mesh-config',
  meshConfigKey: 'mesh.yaml',
  tlsDir: '/etc/remora/tls',
  /** The identity CA's own HTTPS listener (POST /v1/certificates, GET /v1/trust-bundle). */
  caPort: 15012,
  /** Secret holding the identity CA root (ca.crt, ca.key) when generated in Kubernetes. */
  caSecretName: 'remora-identity-ca',
  /** Service account of the injector: its CA listener proves this identity to proxies. */
  serviceAccount: 'remora-injector',
  defaultProxyImageRepo: 'ghcr.io/remora-mesh/remora-proxy',
});

/** Environment variables read by remora-injector (parsed in one place: injector/src/config.ts). */
export const INJECTOR_ENV = Object.freeze({
  port: 'REMORA_INJECTOR_PORT',
  tlsDir: 'REMORA_INJECTOR_TLS_DIR',
  webhookConfigName: 'REMORA_WEBHOOK_CONFIG_NAME',
  namespace: 'REMORA_NAMESPACE',
  /** `namespace/name` of the mesh ConfigMap. */
  meshConfigMap: 'REMORA_MESH_CONFIGMAP',
  logLevel: 'REMORA_LOG_LEVEL',
  /** Directory with a mounted identity CA root (ca.crt, ca.key); else kept in a Secret or generated. */
  caDir: 'REMORA_CA_DIR',
  /** JSON file mapping token → "namespace/serviceaccount" (outside Kubernetes, instead of TokenReview). */
  staticTokens: 'REMORA_STATIC_TOKENS',
  /** `true` lets REMORA_STATIC_TOKENS replace TokenReview even where in-cluster credentials exist. */
  allowStaticTokens: 'REMORA_ALLOW_STATIC_TOKENS',
  /** Lifetime of issued workload certificates, in seconds (default 86400). */
  certTtlSeconds: 'REMORA_CERT_TTL_SECONDS',
  /** Discovery and policy streams served at most, in total (default 20000). */
  maxStreams: 'REMORA_CA_MAX_STREAMS',
  /** Streams one client (workload identity and address: one pod) may hold (default 512). */
  maxStreamsPerClient: 'REMORA_CA_MAX_STREAMS_PER_CLIENT',
  /** Port of the CA listener (default INJECTOR.caPort; 0 picks a free one). */
  caPort: 'REMORA_CA_PORT',
  /** Trust domain of issued identities (default DEFAULT_TRUST_DOMAIN). */
  trustDomain: 'REMORA_TRUST_DOMAIN',
  /** Static discovery file served to proxies outside Kubernetes (same format as the proxy's). */
  discoveryFile: 'REMORA_DISCOVERY_FILE',
  /** Policy document served to proxies outside Kubernetes (YAML/JSON, docs/policy.md). */
  policyFile: 'REMORA_POLICY_FILE',
  /** `namespace/name` of the ConfigMap holding the policy document (key POLICY_CONFIGMAP.key). */
  policyConfigMap: 'REMORA_POLICY_CONFIGMAP',
  /** Directory of engine bundles the injector serves: `<dir>/<version>.tar.gz` (docs/upgrades.md). */
  engineBundleDir: 'REMORA_ENGINE_BUNDLE_DIR',
});

/** The policy ConfigMap the injector serves in Kubernetes (docs/policy.md). */
export const POLICY_CONFIGMAP = Object.freeze({ name: 'remora-policy', key: 'policy.yaml' });

/** Metrics of remora-injector. */
export const INJECTOR_METRICS = Object.freeze({
  reviewsTotal: 'remora_injector_reviews_total',
  injectionsTotal: 'remora_injector_injections_total',
  skipsTotal: 'remora_injector_skips_total',
  reviewDuration: 'remora_injector_review_duration_seconds',
  certificatesIssued: 'remora_injector_certificates_issued_total',
  certificatesRefused: 'remora_injector_certificates_refused_total',
  /** Policy documents read from the file or ConfigMap, by result (`accepted` | `rejected`). */
  policyUpdates: 'remora_injector_policy_updates_total',
  /** Discovery and policy streams open now. */
  streamsOpen: 'remora_injector_streams_open',
  /** Streams refused, by reason (no client certificate, caps). */
  streamsRefused: 'remora_injector_streams_refused_total',
  /** Streams closed because their subscriber stopped reading. */
  streamsSlowClosed: 'remora_injector_streams_slow_closed_total',
});

/** HTTP paths of the identity CA listener. */
export const CA_PATHS = Object.freeze({
  certificates: '/v1/certificates',
  trustBundle: '/v1/trust-bundle',
  /** GET ?dest=ip:port: NDJSON stream of that destination's endpoints (snapshot, then changes). */
  discovery: '/v1/discovery',
  /** GET ?workload=<ns>/<name>: NDJSON stream of the policy document (snapshot, then changes). */
  policy: '/v1/policy',
  /** GET: NDJSON stream of the engine version proxies should run (docs/upgrades.md). */
  engineVersion: '/v1/engine-version',
  /** GET /v1/engine/<sha256 hex>: an engine bundle, content-addressed. */
  engineBundle: '/v1/engine/',
  /** POST {op: acquire|release|report, ...}: upgrade leases (at most N pods upgrading at a time). */
  engineLease: '/v1/engine-lease',
});

/**
 * The ConfigMap (in the injector's namespace) where the injector records what each proxy
 * reported about its engine, key `<namespace>.<pod>` (docs/upgrades.md); `remora upgrade` reads it.
 */
export const ENGINE_STATUS_CONFIGMAP = 'remora-engine-status';

/** ALPN protocol spoken on the mesh tunnel (port 15008). */
export const TUNNEL_ALPN = 'remora';

/** Header carrying the verified peer identity from the inbound proxy to the app. */
export const PEER_IDENTITY_HEADER = 'x-remora-peer-identity';

/**
 * Header an outbound proxy adds to an HTTP/1.x request it carries over the shared HTTP/2
 * connection to a peer proxy (REMORA_MESH_HTTP1_OVER_H2, tunnel/origproto.ts); value
 * `HTTP/1.1` (Linkerd's `l5d-orig-proto`). The peer's inbound side, and only for a stream that
 * came through the mTLS tunnel, forwards such a request to its app as HTTP/1.1. Every spelling
 * of it is dropped from every request that enters a proxy (http/headers.ts).
 */
export const ORIG_PROTO_HEADER = 'x-remora-orig-proto';

/**
 * The mesh trust bundle as injected pods read it: a ConfigMap in the pod's own namespace (pods
 * cannot mount another namespace's objects), published by the control plane, key `ca.crt` (PEM).
 */
export const TRUST_BUNDLE = Object.freeze({
  configMap: 'remora-trust-bundle',
  key: 'ca.crt',
});
