/**
 * The engine's configuration, parsed once (STYLE #4): `parseConfig(env, fileContents?)` is pure
 * and returns a frozen, typed config or throws one ConfigError listing every problem. The env
 * names all come from contract.ts; the optional JSON file (REMORA_CONFIG_FILE) uses the same
 * field names as the ENV keys (`{"inboundPort": 15006}`), and the environment wins over it.
 */
import {
  DEFAULT_TRUST_DOMAIN,
  ENV,
  FAILURE_MODES,
  MTLS_MODES,
  OTEL_ENV,
  UPSTREAM_CLIENTS,
  HTTP_SERVERS,
  PORTS,
  DEFAULT_FAILURE_MODE,
  PROXY_LOG_LEVELS,
} from '../contract.js';
import type { FailureMode, HttpServer, MtlsMode, ProxyLogLevel, UpstreamClient } from '../contract.js';
import { ConfigError } from '../errors.js';
import {
  parseBindPort,
  parseIpAddress,
  parsePort,
  parsePortRange,
  parseSeconds,
  parseTrustDomain,
  splitList,
} from '../values.js';
import type { PortRange } from '../values.js';

export type { PortRange };
/** What REMORA_LOG_LEVEL accepts (contract.ts PROXY_LOG_LEVELS). */
export type LogLevel = ProxyLogLevel;

export interface Target {
  readonly host: string;
  readonly port: number;
  /** source address to connect from (inbound delivery to the pod IP, inbound/target.ts) */
  readonly localAddress?: string;
}

export interface ProxyConfig {
  /** Inbound capture listener (iptables PREROUTING → REDIRECT lands here). */
  readonly inboundPort: number;
  readonly inboundHost: string;
  /** Outbound capture listener (iptables OUTPUT → REDIRECT lands here). */
  readonly outboundPort: number;
  readonly outboundHost: string;
  /** Mesh tunnel port (mTLS between proxies); bound only when a CA is configured. */
  readonly tunnelPort: number;
  readonly tunnelHost: string;
  /** The identity CA (REMORA_CA_ADDRESS); set = mTLS on: certificate, tunnel, readiness gate. */
  readonly caAddress: Target | undefined;
  /** PEM roots the proxy trusts for the CA and its peers (REMORA_CA_BUNDLE_FILE). */
  readonly caBundleFile: string | undefined;
  /** The projected service-account token presented to the CA (REMORA_TOKEN_FILE). */
  readonly tokenFile: string | undefined;
  readonly trustDomain: string;
  /** Static discovery map (REMORA_DISCOVERY_FILE), outside Kubernetes; wins over the address. */
  readonly discoveryFile: string | undefined;
  /** The injector's discovery stream (REMORA_DISCOVERY_ADDRESS), verified with the CA bundle. */
  readonly discoveryAddress: Target | undefined;
  /**
   * Policy document (REMORA_POLICY_FILE, docs/policy-distribution.md), read before listening
   * and re-read on change; wins over the injector's policy stream (REMORA_DISCOVERY_ADDRESS).
   */
  readonly policyFile: string | undefined;
  readonly healthPort: number;
  readonly healthHost: string;
  readonly metricsPort: number;
  readonly metricsHost: string;
  readonly adminPort: number;
  readonly adminHost: string;
  /** Where inbound connections go when they were not redirected (explicit mode). */
  readonly inboundTarget: Target | undefined;
  /** Where outbound connections go when they were not redirected (explicit mode). */
  readonly outboundTarget: Target | undefined;
  readonly logLevel: LogLevel;
  /** Upper bound of a graceful drain, in seconds. */
  readonly drainSeconds: number;
  /** How long protocol detection waits for the first bytes before relaying as opaque TCP. */
  readonly detectTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly failureMode: FailureMode;
  readonly mtlsMode: MtlsMode;
  readonly accessLog: boolean;
  readonly accessLogSample: number;
  /** distinct callers/destinations per direction with their own series; the rest share `overflow` */
  readonly metricsMaxPeers: number;
  readonly traceSampling: number;
  readonly podName: string | undefined;
  readonly podNamespace: string | undefined;
  /**
   * The pod's IP (REMORA_POD_IP, downward API `status.podIP`): redirected and tunnelled inbound
   * connections go to `<podIp>:<port>` (inbound/target.ts). Unset (explicit mode, tests outside
   * a pod): to 127.0.0.1, as before, with a warning at start.
   */
  readonly podIp: string | undefined;
  /** Inbound ports delivered to 127.0.0.1 even with a pod IP (remora.dev/localhost-inbound-ports). */
  readonly localhostInboundPorts: readonly number[];
  /** Most concurrent downstream connections per data listener (tcp/cap.ts). */
  readonly maxConnections: number;
  /** A request head not complete within this many ms is answered 408 and the connection closed. */
  readonly requestHeadTimeoutMs: number;
  readonly serviceAccount: string | undefined;
  readonly workload: string | undefined;
  /** The app's ports declared opaque TCP (REMORA_OPAQUE_PORTS): never detected, never L7. */
  readonly opaquePorts: readonly PortRange[];
  /** The app's ports declared HTTP (REMORA_HTTP_PORTS): non-HTTP is refused, never relayed. */
  readonly httpPorts: readonly PortRange[];
  /** Destination ports declared opaque TCP (REMORA_OUTBOUND_OPAQUE_PORTS). */
  readonly outboundOpaquePorts: readonly PortRange[];
  /** Destination ports declared HTTP (REMORA_OUTBOUND_HTTP_PORTS). */
  readonly outboundHttpPorts: readonly PortRange[];
  /** Upstream HTTP/1.1 client (REMORA_UPSTREAM_CLIENT): `codec` (default) or `undici` (docs/proxy.md). */
  readonly upstreamClient: UpstreamClient;
  /**
   * HTTP/1.1 requests to meshed endpoints over the shared HTTP/2 connection per peer proxy
   * (REMORA_MESH_HTTP1_OVER_H2, tunnel/origproto.ts); off: one pooled tunnel per connection.
   */
  readonly meshHttp1OverH2: boolean;
  /** Downstream HTTP/1.1 server stage (REMORA_HTTP_SERVER): `codec` (the project's) or `node`. */
  readonly httpServer: HttpServer;
  /** The standard OTEL_* variables that were set, raw; the telemetry module validates them. */
  readonly otel: Readonly<Partial<Record<keyof typeof OTEL_ENV, string>>>;
}

/** Defaults when neither env nor file says otherwise; documented in docs/proxy.md. */
export const DEFAULTS = Object.freeze({
  inboundPort: PORTS.inbound,
  outboundPort: PORTS.outbound,
  tunnelPort: PORTS.tunnel,
  healthPort: PORTS.health,
  metricsPort: PORTS.metrics,
  adminPort: PORTS.admin,
  logLevel: 'info' as LogLevel,
  drainSeconds: 5,
  detectTimeoutMs: 1000,
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  failureMode: DEFAULT_FAILURE_MODE,
  mtlsMode: 'permissive' as MtlsMode,
  accessLog: true,
  accessLogSample: 1,
  metricsMaxPeers: 100,
  traceSampling: 1,
  upstreamClient: 'codec' as UpstreamClient,
  meshHttp1OverH2: false,
  httpServer: 'codec' as HttpServer,
  maxConnections: 16_384,
  requestHeadTimeoutMs: 15_000,
});

const ALL_INTERFACES = '0.0.0.0';
const LOOPBACK = '127.0.0.1';

type Key = keyof typeof ENV;
type Raw = string | number | boolean | undefined;

/** Collects every problem instead of stopping at the first. */
class Reader {
  readonly errors: string[] = [];
  constructor(
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly file: Readonly<Record<string, unknown>>,
  ) {}

  raw(key: Key): { value: Raw; where: string } {
    const fromEnv = this.env[ENV[key]];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, where: ENV[key] };
    const fromFile = this.file[key];
    if (fromFile === undefined || fromFile === null)
      return { value: undefined, where: `${ENV.configFile}:${key}` };
    if (typeof fromFile === 'string' || typeof fromFile === 'number' || typeof fromFile === 'boolean') {
      return { value: fromFile, where: `${ENV.configFile}:${key}` };
    }
    this.errors.push(
      `${ENV.configFile}:${key}: expected a string, number or boolean, got ${JSON.stringify(fromFile)}`,
    );
    return { value: undefined, where: `${ENV.configFile}:${key}` };
  }

  int(key: Key, def: number, min: number, max: number, what: string): number {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    const n = typeof value === 'number' ? value : /^\s*-?\d+\s*$/.test(String(value)) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      this.errors.push(`${where}: not ${what} (${min}..${max}): ${JSON.stringify(value)}`);
      return def;
    }
    return n;
  }

  port(key: Key, def: number): number {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    const p = parseBindPort(String(value).trim());
    if (!p.ok) {
      this.errors.push(`${where}: not a port (0..65535): ${JSON.stringify(value)}`);
      return def;
    }
    return p.value;
  }

  seconds(key: Key, def: number, max: number): number {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    const s = parseSeconds(String(value).trim(), max);
    if (!s.ok) {
      this.errors.push(`${where}: not a number of seconds (0..${max}): ${JSON.stringify(value)}`);
      return def;
    }
    return s.value;
  }

  trustDomain(key: Key, def: string): string {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    const t = parseTrustDomain(String(value).trim());
    if (!t.ok) {
      this.errors.push(`${where}: ${t.reason}: ${JSON.stringify(value)}`);
      return def;
    }
    return t.value;
  }

  fraction(key: Key, def: number): number {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    const n = typeof value === 'number' ? value : String(value).trim() === '' ? NaN : Number(value);
    if (!Number.isFinite(n) || n < 0 || n > 1) {
      this.errors.push(`${where}: not a fraction between 0 and 1: ${JSON.stringify(value)}`);
      return def;
    }
    return n;
  }

  oneOf<T extends string>(key: Key, allowed: readonly T[], def: T): T {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    const s = String(value).trim().toLowerCase();
    if (!(allowed as readonly string[]).includes(s)) {
      this.errors.push(`${where}: must be one of ${allowed.join(', ')}: ${JSON.stringify(value)}`);
      return def;
    }
    return s as T;
  }

  onOff(key: Key, def: boolean): boolean {
    const { value, where } = this.raw(key);
    if (value === undefined) return def;
    if (typeof value === 'boolean') return value;
    const s = String(value).trim().toLowerCase();
    if (s === 'on' || s === 'true' || s === '1') return true;
    if (s === 'off' || s === 'false' || s === '0') return false;
    this.errors.push(`${where}: must be on or off: ${JSON.stringify(value)}`);
    return def;
  }

  string(key: Key): string | undefined {
    const { value } = this.raw(key);
    return value === undefined ? undefined : String(value);
  }

  host(key: Key): string | undefined {
    const { value, where } = this.raw(key);
    if (value === undefined) return undefined;
    const s = String(value).trim();
    if (!/^[A-Za-z0-9.:_-]+$/.test(s)) {
      this.errors.push(`${where}: not a host name or IP address: ${JSON.stringify(value)}`);
      return undefined;
    }
    return s;
  }

  ip(key: Key): string | undefined {
    const { value, where } = this.raw(key);
    if (value === undefined) return undefined;
    const s = String(value).trim();
    if (!parseIpAddress(s).ok) {
      this.errors.push(`${where}: not an IP address: ${JSON.stringify(value)}`);
      return undefined;
    }
    return s;
  }

  /** Comma- or space-separated ports (1..65535), deduplicated; empty means none. */
  portList(key: Key): readonly number[] {
    const { value, where } = this.raw(key);
    if (value === undefined) return Object.freeze([]);
    const out = new Set<number>();
    for (const part of splitList(String(value))) {
      const p = parsePort(part);
      if (!p.ok) {
        this.errors.push(
          `${where}: not a port (1..65535): ${JSON.stringify(part)} in ${JSON.stringify(value)}`,
        );
        continue;
      }
      out.add(p.value);
    }
    return Object.freeze([...out].sort((a, b) => a - b));
  }

  /** `80,443,9000-9010` (spaces allowed) → ranges; each port 1..65535, from ≤ to. */
  ports(key: Key): readonly PortRange[] {
    const { value, where } = this.raw(key);
    if (value === undefined) return Object.freeze([]);
    const out: PortRange[] = [];
    for (const t of splitList(String(value))) {
      const r = parsePortRange(t);
      if (!r.ok) {
        this.errors.push(
          `${where}: not a port or a range of ports (1..65535, e.g. 3306,9000-9010): ${JSON.stringify(t)}`,
        );
        continue;
      }
      out.push(Object.freeze(r.value));
    }
    return Object.freeze(out);
  }

  target(key: Key): Target | undefined {
    const { value, where } = this.raw(key);
    if (value === undefined) return undefined;
    const s = String(value).trim();
    // host:port, or [v6]:port
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(s);
    const port = m ? parsePort(m[3] as string) : undefined;
    if (!m || !port?.ok) {
      this.errors.push(
        `${where}: not host:port (e.g. 127.0.0.1:8080 or [::1]:8080): ${JSON.stringify(value)}`,
      );
      return undefined;
    }
    return Object.freeze({ host: (m[1] ?? m[2]) as string, port: port.value });
  }
}

/**
 * Parses the environment (and the optional config file's contents) into a frozen config.
 * Throws ConfigError with every problem found, never just the first.
 */
export function parseConfig(
  env: Readonly<Record<string, string | undefined>>,
  fileContents?: string,
): ProxyConfig {
  const errors: string[] = [];
  let file: Record<string, unknown> = {};
  if (fileContents !== undefined) {
    try {
      const parsed: unknown = JSON.parse(fileContents);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        errors.push(`${ENV.configFile}: must hold a JSON object`);
      } else {
        file = parsed as Record<string, unknown>;
        for (const k of Object.keys(file)) {
          if (!(k in ENV) || k === 'configFile')
            errors.push(`${ENV.configFile}: unknown field ${JSON.stringify(k)}`);
        }
      }
    } catch (err) {
      errors.push(`${ENV.configFile}: not valid JSON: ${(err as Error).message}`);
    }
  }
  const r = new Reader(env, file);
  const bindHost = r.host('bindHost');
  const config: ProxyConfig = {
    inboundPort: r.port('inboundPort', DEFAULTS.inboundPort),
    inboundHost: bindHost ?? ALL_INTERFACES,
    outboundPort: r.port('outboundPort', DEFAULTS.outboundPort),
    outboundHost: bindHost ?? LOOPBACK,
    tunnelPort: r.port('tunnelPort', DEFAULTS.tunnelPort),
    tunnelHost: bindHost ?? ALL_INTERFACES,
    caAddress: r.target('caAddress'),
    caBundleFile: r.string('caBundleFile'),
    tokenFile: r.string('tokenFile'),
    trustDomain: r.trustDomain('trustDomain', DEFAULT_TRUST_DOMAIN),
    discoveryFile: r.string('discoveryFile'),
    discoveryAddress: r.target('discoveryAddress'),
    policyFile: r.string('policyFile'),
    healthPort: r.port('healthPort', DEFAULTS.healthPort),
    healthHost: bindHost ?? ALL_INTERFACES,
    metricsPort: r.port('metricsPort', DEFAULTS.metricsPort),
    metricsHost: bindHost ?? ALL_INTERFACES,
    adminPort: r.port('adminPort', DEFAULTS.adminPort),
    adminHost: bindHost ?? LOOPBACK,
    inboundTarget: r.target('inboundTarget'),
    outboundTarget: r.target('outboundTarget'),
    logLevel: r.oneOf('logLevel', PROXY_LOG_LEVELS, DEFAULTS.logLevel),
    drainSeconds: r.seconds('drainSeconds', DEFAULTS.drainSeconds, 3600),
    detectTimeoutMs: r.int('detectTimeoutMs', DEFAULTS.detectTimeoutMs, 1, 60_000, 'a timeout in ms'),
    maxHeaderBytes: r.int('maxHeaderBytes', DEFAULTS.maxHeaderBytes, 1024, 1024 * 1024, 'a size in bytes'),
    maxHeaders: r.int('maxHeaders', DEFAULTS.maxHeaders, 1, 10_000, 'a header count'),
    failureMode: r.oneOf('failureMode', FAILURE_MODES, DEFAULTS.failureMode),
    mtlsMode: r.oneOf('mtlsMode', MTLS_MODES, DEFAULTS.mtlsMode),
    accessLog: r.onOff('accessLog', DEFAULTS.accessLog),
    accessLogSample: r.fraction('accessLogSample', DEFAULTS.accessLogSample),
    metricsMaxPeers: r.int('metricsMaxPeers', DEFAULTS.metricsMaxPeers, 0, 10_000, 'a number of peers'),
    traceSampling: r.fraction('traceSampling', DEFAULTS.traceSampling),
    podName: r.string('podName'),
    podNamespace: r.string('podNamespace'),
    podIp: r.ip('podIp'),
    localhostInboundPorts: r.portList('localhostInboundPorts'),
    maxConnections: r.int('maxConnections', DEFAULTS.maxConnections, 1, 1_000_000, 'a connection count'),
    requestHeadTimeoutMs: r.int(
      'requestHeadTimeoutMs',
      DEFAULTS.requestHeadTimeoutMs,
      100,
      300_000,
      'a timeout in ms',
    ),
    serviceAccount: r.string('serviceAccount'),
    workload: r.string('workload'),
    opaquePorts: r.ports('opaquePorts'),
    httpPorts: r.ports('httpPorts'),
    outboundOpaquePorts: r.ports('outboundOpaquePorts'),
    outboundHttpPorts: r.ports('outboundHttpPorts'),
    upstreamClient: r.oneOf('upstreamClient', UPSTREAM_CLIENTS, DEFAULTS.upstreamClient),
    meshHttp1OverH2: r.onOff('meshHttp1OverH2', DEFAULTS.meshHttp1OverH2),
    httpServer: r.oneOf('httpServer', HTTP_SERVERS, DEFAULTS.httpServer),
    otel: readOtel(env),
  };
  errors.push(
    ...r.errors,
    ...portClashes(config),
    ...mtlsGaps(config),
    ...declaredTwice(config.opaquePorts, config.httpPorts, ENV.opaquePorts, ENV.httpPorts),
    ...declaredTwice(
      config.outboundOpaquePorts,
      config.outboundHttpPorts,
      ENV.outboundOpaquePorts,
      ENV.outboundHttpPorts,
    ),
  );
  if (errors.length > 0) throw new ConfigError(errors);
  return Object.freeze(config);
}

function readOtel(env: Readonly<Record<string, string | undefined>>): ProxyConfig['otel'] {
  const out: Partial<Record<keyof typeof OTEL_ENV, string>> = {};
  for (const k of Object.keys(OTEL_ENV) as (keyof typeof OTEL_ENV)[]) {
    const v = env[OTEL_ENV[k]];
    if (v !== undefined && v !== '') out[k] = v;
  }
  return Object.freeze(out);
}

/** mTLS needs the CA, the roots to trust it with, and a token to present. */
function mtlsGaps(c: ProxyConfig): string[] {
  const errors: string[] = [];
  if (c.discoveryAddress !== undefined && c.caBundleFile === undefined)
    errors.push(`${ENV.discoveryAddress} is set: ${ENV.caBundleFile} is needed too`);
  // The injector serves its streams only to proxies that show their workload certificate.
  if (c.discoveryAddress !== undefined && c.caAddress === undefined)
    errors.push(
      `${ENV.discoveryAddress} is set: ${ENV.caAddress} is needed too (the injector authenticates stream clients by their workload certificate)`,
    );
  if (c.caAddress === undefined) return errors;
  if (c.caBundleFile === undefined) errors.push(`${ENV.caAddress} is set: ${ENV.caBundleFile} is needed too`);
  if (c.tokenFile === undefined) errors.push(`${ENV.caAddress} is set: ${ENV.tokenFile} is needed too`);
  return errors;
}

/** A port cannot be both opaque and HTTP. */
function declaredTwice(
  a: readonly PortRange[],
  b: readonly PortRange[],
  aName: string,
  bName: string,
): string[] {
  for (const [af, at] of a)
    for (const [bf, bt] of b)
      if (af <= bt && bf <= at)
        return [
          `${aName} and ${bName} both name port ${Math.max(af, bf)}: a port is opaque or HTTP, not both`,
        ];
  return [];
}

/** Whether `port` falls in one of `ranges`. */
export function inRanges(ranges: readonly PortRange[], port: number): boolean {
  for (const [from, to] of ranges) if (port >= from && port <= to) return true;
  return false;
}

/** Two listeners on the same fixed port would fail at bind: say so before binding anything. */
function portClashes(c: ProxyConfig): string[] {
  const ports: [string, number][] = [
    [ENV.inboundPort, c.inboundPort],
    [ENV.outboundPort, c.outboundPort],
    [ENV.tunnelPort, c.tunnelPort],
    [ENV.healthPort, c.healthPort],
    [ENV.metricsPort, c.metricsPort],
    [ENV.adminPort, c.adminPort],
  ];
  const errors: string[] = [];
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const [a, pa] = ports[i] as [string, number];
      const [b, pb] = ports[j] as [string, number];
      if (pa !== 0 && pa === pb) errors.push(`${a} and ${b} are both ${pa}`);
    }
  }
  return errors;
}

/** The config as shown on the admin /config endpoint: nothing secret (OTEL headers are redacted). */
export function publicConfig(c: ProxyConfig): Record<string, unknown> {
  const otel: Record<string, string> = { ...c.otel };
  if (otel.headers !== undefined) otel.headers = '<redacted>';
  return { ...c, otel };
}
