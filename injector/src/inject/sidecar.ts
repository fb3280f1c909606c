/**
 * The two containers and five volumes Remora adds to a pod. Each field is there for a reason
 * written beside it; docs/injector.md lists them for users.
 */
import {
  ADMIN_PATHS,
  ENV,
  HEALTH_PATHS,
  INIT_CONTAINER_NAME,
  OTEL_ENV,
  OTLP_ENDPOINT_ENV,
  PORTS,
  POD_PATHS,
  PROXY_CONTAINER_NAME,
  PROXY_GID,
  PROXY_UID,
  TOKEN_AUDIENCE,
  TRUST_BUNDLE,
} from '@remora/proxy/contract';
import type { MeshConfig } from '../config/mesh.js';
import type { InjectOptions } from './annotations.js';
import type { AppProbe } from './probes.js';

export const VOLUMES = Object.freeze({
  token: 'remora-token',
  run: 'remora-run',
  /** An empty, read-only directory shadowing the default API token in the injected containers. */
  noApiToken: 'remora-no-api-token',
  /** The mesh trust bundle (roots for the CA listener and for peers), from a ConfigMap. */
  trustBundle: 'remora-trust-bundle',
  /** Engine bundles the supervisor fetches for in-place upgrades (docs/upgrades.md). */
  engines: 'remora-engines',
});

/** Room for a few engine bundles unpacked (each a few MB; the proxy caps one at 256 MiB unpacked). */
export const ENGINES_SIZE_LIMIT = '512Mi';

/**
 * Binaries of the proxy image, used as the containers' commands: the two bins on its PATH, and
 * tini (Debian's package, the image's ENTRYPOINT). A pod's `command` replaces the ENTRYPOINT, so
 * the sidecar names tini itself: as PID 1 it forwards SIGTERM to the supervisor and reaps any
 * orphan (an engine whose supervisor died, a hook's leftovers). remora-init is a one-shot that
 * starts no children, so it runs bare.
 */
export const COMMANDS = Object.freeze({ init: 'remora-init', proxy: 'remora-proxy', tini: '/usr/bin/tini' });

/** The sidecar's `command`: tini as PID 1, then the supervisor (no `-g`: it drains its engines itself). */
export const PROXY_COMMAND: readonly string[] = Object.freeze([COMMANDS.tini, '--', COMMANDS.proxy]);

/** Projected token lifetime: the kubelet refreshes it at 80 %. */
const TOKEN_EXPIRATION_SECONDS = 3600;
/** How long the legacy-mode postStart hook waits for the proxy before failing the container. */
const HOLD_APP_TIMEOUT_SECONDS = 120;

/** Reserved ports of a meshed pod: an app container may not declare them (they would collide). */
export const RESERVED_PORTS: readonly number[] = Object.freeze([
  PORTS.admin,
  PORTS.outbound,
  PORTS.inbound,
  PORTS.tunnel,
  PORTS.health,
  PORTS.metrics,
]);

export function buildVolumes(): Record<string, unknown>[] {
  return [
    {
      name: VOLUMES.token,
      projected: {
        // 0444: only remora-proxy mounts this volume, and it runs as 1337, not the file's owner.
        defaultMode: 0o444,
        sources: [
          {
            serviceAccountToken: {
              audience: TOKEN_AUDIENCE,
              expirationSeconds: TOKEN_EXPIRATION_SECONDS,
              path: 'token',
            },
          },
        ],
      },
    },
    { name: VOLUMES.run, emptyDir: {} },
    { name: VOLUMES.noApiToken, emptyDir: {} },
    // Writable beside the read-only root: the supervisor unpacks verified bundles here.
    { name: VOLUMES.engines, emptyDir: { sizeLimit: ENGINES_SIZE_LIMIT } },
    {
      name: VOLUMES.trustBundle,
      // Not optional: a pod waits (with an event naming the ConfigMap) rather than start a proxy
      // that cannot verify the CA.
      configMap: { name: TRUST_BUNDLE.configMap, items: [{ key: TRUST_BUNDLE.key, path: TRUST_BUNDLE.key }] },
    },
  ];
}

const shadowApiToken = { name: VOLUMES.noApiToken, mountPath: POD_PATHS.defaultSaTokenDir, readOnly: true };

function csv(list: readonly (string | number)[]): string {
  return list.join(',');
}

/** The flags of remora-init, derived from the annotations (see docs/injector.md). */
export function initArgs(opts: InjectOptions, mesh: MeshConfig): string[] {
  const args = [
    '--proxy-uid',
    String(PROXY_UID),
    '--proxy-gid',
    String(PROXY_GID),
    '--inbound-port',
    String(PORTS.inbound),
    '--outbound-port',
    String(PORTS.outbound),
    '--include-inbound-ports',
    opts.includeInboundPorts === '*' ? '*' : csv(opts.includeInboundPorts),
    // The tunnel, health and metrics ports are reached from off the pod and never redirected.
    '--exclude-inbound-ports',
    csv([...new Set([PORTS.tunnel, PORTS.health, PORTS.metrics, ...opts.excludeInboundPorts])]),
  ];
  if (opts.excludeOutboundPorts.length > 0)
    args.push('--exclude-outbound-ports', csv(opts.excludeOutboundPorts));
  args.push(
    '--include-outbound-cidrs',
    opts.includeOutboundCidrs === '*' ? '*' : csv(opts.includeOutboundCidrs),
  );
  if (opts.excludeOutboundCidrs.length > 0)
    args.push('--exclude-outbound-cidrs', csv(opts.excludeOutboundCidrs));
  args.push(mesh.ipv6 ? '--ipv6' : '--no-ipv6');
  return args;
}

export function buildInitContainer(opts: InjectOptions, mesh: MeshConfig): Record<string, unknown> {
  return {
    name: INIT_CONTAINER_NAME,
    image: opts.proxyImage,
    imagePullPolicy: mesh.imagePullPolicy,
    command: [COMMANDS.init],
    args: initArgs(opts, mesh),
    resources: mesh.initResources,
    securityContext: {
      // iptables needs root with NET_ADMIN and NET_RAW, and nothing else.
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // iptables-legacy takes its lock in /run; the root file system stays read-only.
    volumeMounts: [{ name: VOLUMES.run, mountPath: '/run', subPath: 'init' }, shadowApiToken],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

function fieldEnv(name: string, fieldPath: string): Record<string, unknown> {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

/** postStart (legacy mode + hold-app): block the next containers until the proxy is ready. */
function waitReadyScript(): string {
  return (
    `const h=require('http'),end=Date.now()+${HOLD_APP_TIMEOUT_SECONDS}e3;function t(){` +
    `const r=h.get({host:'127.0.0.1',port:${PORTS.health},path:'${HEALTH_PATHS.ready}',timeout:1e3},` +
    `s=>{s.resume();s.statusCode===200?process.exit(0):again()});r.on('error',again);r.on('timeout',()=>r.destroy())}` +
    `function again(){if(Date.now()>end){console.error('remora-proxy not ready');process.exit(1)}setTimeout(t,200)}t()`
  );
}

/**
 * preStop: ask the supervisor to drain (admin API, bearer token from the runtime dir) and wait
 * until it answers or the drain time is over. Without a token or a listener it returns at once.
 */
function drainScript(seconds: number): string {
  return (
    `let t='';try{t=require('fs').readFileSync('${POD_PATHS.adminTokenFile}','utf8').trim()}catch{}` +
    `const r=require('http').request({host:'127.0.0.1',port:${PORTS.admin},method:'POST',path:'${ADMIN_PATHS.drain}',` +
    `headers:{authorization:'Bearer '+t}},s=>{s.resume();s.on('end',()=>process.exit(0))});r.on('error',()=>process.exit(0));` +
    `setTimeout(()=>process.exit(0),${seconds}e3).unref();r.end()`
  );
}

export function buildProxyContainer(
  opts: InjectOptions,
  mesh: MeshConfig,
  appProbes: Readonly<Record<string, AppProbe>>,
  workload: string | undefined,
): Record<string, unknown> {
  const health = (path: string): Record<string, unknown> => ({ path, port: PORTS.health, scheme: 'HTTP' });
  const env: Record<string, unknown>[] = [
    fieldEnv(ENV.podName, 'metadata.name'),
    fieldEnv(ENV.podNamespace, 'metadata.namespace'),
    fieldEnv(ENV.podIp, 'status.podIP'),
    fieldEnv(ENV.serviceAccount, 'spec.serviceAccountName'),
    { name: ENV.failureMode, value: opts.failureMode },
    { name: ENV.mtlsMode, value: opts.mtlsMode },
    { name: ENV.logLevel, value: opts.logLevel },
    { name: ENV.traceSampling, value: String(opts.traceSampling) },
    { name: ENV.drainSeconds, value: String(opts.drainSeconds) },
    { name: ENV.trustDomain, value: mesh.trustDomain },
    { name: ENV.caAddress, value: mesh.caAddress },
    { name: ENV.discoveryAddress, value: mesh.discoveryAddress },
    { name: ENV.tokenFile, value: POD_PATHS.tokenFile },
    { name: ENV.caBundleFile, value: POD_PATHS.trustBundleFile },
    { name: ENV.engineBundleRoot, value: POD_PATHS.engineBundleRoot },
  ];
  // The workload names this side of every series and span (docs/injector.md: the rule).
  if (workload !== undefined)
    env.push({ name: ENV.workload, value: workload }, { name: OTEL_ENV.serviceName, value: workload });
  if (mesh.otlpEndpoint !== undefined) env.push({ name: OTLP_ENDPOINT_ENV, value: mesh.otlpEndpoint });
  if (Object.keys(appProbes).length > 0) env.push({ name: ENV.appProbes, value: JSON.stringify(appProbes) });
  // Only when the pod asks: the defaults (pod-IP delivery, quit needs the token) need no env.
  if (opts.localhostInboundPorts.length > 0)
    env.push({ name: ENV.localhostInboundPorts, value: opts.localhostInboundPorts.join(',') });
  if (opts.quitWithoutToken) env.push({ name: ENV.quitWithoutToken, value: 'on' });
  // Server-speaks-first ports: the proxy relays them without detection (docs/proxy.md).
  if (opts.opaquePorts.length > 0) env.push({ name: ENV.opaquePorts, value: opts.opaquePorts.join(',') });

  const lifecycle: Record<string, unknown> = {
    preStop: { exec: { command: ['node', '-e', drainScript(opts.drainSeconds)] } },
  };
  if (!opts.nativeSidecar && opts.holdApp) {
    lifecycle.postStart = { exec: { command: ['node', '-e', waitReadyScript()] } };
  }
  const port = (name: string, containerPort: number): Record<string, unknown> => ({
    name,
    containerPort,
    protocol: 'TCP',
  });
  const c: Record<string, unknown> = {
    name: PROXY_CONTAINER_NAME,
    image: opts.proxyImage,
    imagePullPolicy: mesh.imagePullPolicy,
    command: [...PROXY_COMMAND],
    ports: [
      port('remora-inbound', PORTS.inbound),
      port('remora-tunnel', PORTS.tunnel),
      port('remora-health', PORTS.health),
      port('remora-metrics', PORTS.metrics),
    ],
    env,
    resources: opts.proxyResources,
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_GID,
      runAsNonRoot: true,
      privileged: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: VOLUMES.token, mountPath: POD_PATHS.tokenDir, readOnly: true },
      { name: VOLUMES.run, mountPath: POD_PATHS.runDir },
      { name: VOLUMES.engines, mountPath: POD_PATHS.engineBundleRoot },
      { name: VOLUMES.trustBundle, mountPath: POD_PATHS.trustBundleDir, readOnly: true },
      shadowApiToken,
    ],
    // Native mode: the kubelet starts the next containers only once this probe succeeds.
    startupProbe: {
      httpGet: health(HEALTH_PATHS.ready),
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: 600,
    },
    readinessProbe: {
      httpGet: health(HEALTH_PATHS.ready),
      periodSeconds: 2,
      timeoutSeconds: 1,
      failureThreshold: 3,
    },
    // Only fails in failure-mode `restart` (DESIGN §4); the supervisor decides.
    livenessProbe: {
      httpGet: health(HEALTH_PATHS.live),
      periodSeconds: 10,
      timeoutSeconds: 1,
      failureThreshold: 3,
    },
    lifecycle,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (opts.nativeSidecar) c.restartPolicy = 'Always';
  return c;
}
