/**
 * The pod annotations of DESIGN §6, validated together into the options of one injection.
 * Every invalid value is reported with the annotation's name and the value, all at once, so a
 * user fixes a manifest in one round.
 */
import { ANNOTATIONS, FAILURE_MODES, LOG_LEVELS, MTLS_MODES, PORTS, PREFIX } from '@remora/proxy/contract';
import type { FailureMode, LogLevel, MtlsMode } from '@remora/proxy/contract';
import type { MeshConfig, Resources } from '../config/mesh.js';
import {
  formatPortRange,
  parseAllOr,
  parseCidrList,
  parsePortList,
  parsePortRanges,
  parseSeconds,
} from '@remora/proxy/values';
import type { Parsed } from '@remora/proxy/values';
import { parseBool, parseEnum, parseImage, parseQuantity, parseRatio, showValue } from './values.js';

export interface InjectOptions {
  failureMode: FailureMode;
  mtlsMode: MtlsMode;
  nativeSidecar: boolean;
  holdApp: boolean;
  drainSeconds: number;
  includeInboundPorts: number[] | '*';
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  includeOutboundCidrs: string[] | '*';
  excludeOutboundCidrs: string[];
  proxyResources: Resources;
  proxyImage: string;
  logLevel: LogLevel;
  traceSampling: number;
  rewriteProbes: boolean;
  /** inbound ports the proxy delivers to 127.0.0.1 instead of the pod IP */
  localhostInboundPorts: number[];
  /** POST /quitquitquit without the admin token (legacy-ordering Jobs); off by default */
  quitWithoutToken: boolean;
  /** the app's ports that speak opaque TCP (`3306`, `9000-9010`): the proxy skips detection */
  opaquePorts: string[];
}

export type AnnotationResult = { ok: true; options: InjectOptions } | { ok: false; errors: string[] };

/** Values of `remora.dev/inject` on a pod. */
export const INJECT_VALUES = ['true', 'enabled', 'false', 'disabled'] as const;

const MAX_DRAIN_SECONDS = 3600;

// The shared validators (@remora/proxy/values), in the shapes the options hold.
const portsOrAll = (s: string): Parsed<number[] | '*'> => parseAllOr(s, parsePortList);
const cidrsOrAll = (s: string): Parsed<string[] | '*'> => parseAllOr(s, parseCidrList);
const portRangeTexts = (s: string): Parsed<string[]> => {
  const r = parsePortRanges(s);
  return r.ok ? { ok: true, value: r.value.map(formatPortRange) } : r;
};

export function parseAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
  mesh: MeshConfig,
): AnnotationResult {
  const a = annotations ?? {};
  const errors: string[] = [];
  const known = new Set<string>(Object.values(ANNOTATIONS));
  for (const key of Object.keys(a)) {
    if (key.startsWith(PREFIX) && !known.has(key)) {
      errors.push(`${key}: unknown annotation (value ${showValue(a[key])}); known: ${[...known].join(', ')}`);
    }
  }

  function get<T>(key: string, parse: (raw: string) => Parsed<T>, fallback: T): T {
    const raw = a[key];
    if (raw === undefined) return fallback;
    const r = parse(raw);
    if (r.ok) return r.value;
    errors.push(`${key}: invalid value ${showValue(raw)}: ${r.reason}`);
    return fallback;
  }

  get(ANNOTATIONS.inject, (s) => parseEnum(s, INJECT_VALUES), 'true');
  const quantity = (
    key: string,
    fallback: string | undefined,
  ): { text: string; value: number } | undefined => {
    const parsed = get(key, parseQuantity, undefined);
    if (parsed) return parsed;
    return fallback === undefined
      ? undefined
      : (parseQuantity(fallback) as { ok: true; value: { text: string; value: number } }).value;
  };
  const mr = mesh.proxyResources;
  const cpu = quantity(ANNOTATIONS.proxyCpu, mr.requests.cpu);
  const memory = quantity(ANNOTATIONS.proxyMemory, mr.requests.memory);
  const cpuLimit = quantity(ANNOTATIONS.proxyCpuLimit, mr.limits.cpu);
  const memoryLimit = quantity(ANNOTATIONS.proxyMemoryLimit, mr.limits.memory);
  // Kubernetes would reject request > limit later with a message that does not say why.
  if (cpu && cpuLimit && cpu.value > cpuLimit.value) {
    errors.push(
      `${ANNOTATIONS.proxyCpu}: request ${showValue(cpu.text)} exceeds the limit ${showValue(cpuLimit.text)} (${ANNOTATIONS.proxyCpuLimit} or the mesh default)`,
    );
  }
  if (memory && memoryLimit && memory.value > memoryLimit.value) {
    errors.push(
      `${ANNOTATIONS.proxyMemory}: request ${showValue(memory.text)} exceeds the limit ${showValue(memoryLimit.text)} (${ANNOTATIONS.proxyMemoryLimit} or the mesh default)`,
    );
  }
  const list = (
    q: { text: string } | undefined,
    key: 'cpu' | 'memory',
    into: Record<string, string>,
  ): void => {
    if (q) into[key] = q.text;
  };
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  list(cpu, 'cpu', requests);
  list(memory, 'memory', requests);
  list(cpuLimit, 'cpu', limits);
  list(memoryLimit, 'memory', limits);

  const options: InjectOptions = {
    failureMode: get(ANNOTATIONS.failureMode, (s) => parseEnum(s, FAILURE_MODES), mesh.defaultFailureMode),
    mtlsMode: get(ANNOTATIONS.mtlsMode, (s) => parseEnum(s, MTLS_MODES), mesh.defaultMtlsMode),
    nativeSidecar: get(ANNOTATIONS.nativeSidecar, parseBool, mesh.nativeSidecar),
    holdApp: get(ANNOTATIONS.holdApp, parseBool, mesh.holdApp),
    drainSeconds: get(ANNOTATIONS.drainSeconds, (s) => parseSeconds(s, MAX_DRAIN_SECONDS), mesh.drainSeconds),
    includeInboundPorts: get(ANNOTATIONS.includeInboundPorts, portsOrAll, '*' as number[] | '*'),
    excludeInboundPorts: get(ANNOTATIONS.excludeInboundPorts, parsePortList, []),
    excludeOutboundPorts: get(ANNOTATIONS.excludeOutboundPorts, parsePortList, []),
    includeOutboundCidrs: get(ANNOTATIONS.includeOutboundCidrs, cidrsOrAll, '*' as string[] | '*'),
    excludeOutboundCidrs: get(ANNOTATIONS.excludeOutboundCidrs, parseCidrList, []),
    proxyResources: { requests, limits },
    proxyImage: get(ANNOTATIONS.proxyImage, parseImage, mesh.proxyImage),
    logLevel: get(ANNOTATIONS.logLevel, (s) => parseEnum(s, LOG_LEVELS), mesh.logLevel),
    traceSampling: get(ANNOTATIONS.traceSampling, parseRatio, mesh.traceSampling),
    rewriteProbes: get(ANNOTATIONS.rewriteProbes, parseBool, true),
    localhostInboundPorts: get(ANNOTATIONS.localhostInboundPorts, parsePortList, []),
    quitWithoutToken: get(ANNOTATIONS.quitWithoutToken, parseBool, false),
    opaquePorts: get(ANNOTATIONS.opaquePorts, portRangeTexts, []),
  };
  const proxyPorts = new Set<number>(Object.values(PORTS));
  const ownPorts = options.localhostInboundPorts.filter((p) => proxyPorts.has(p));
  if (ownPorts.length > 0)
    errors.push(
      `${ANNOTATIONS.localhostInboundPorts}: invalid value ${showValue(a[ANNOTATIONS.localhostInboundPorts])}: ${ownPorts.join(', ')} belong to the proxy`,
    );
  return errors.length > 0 ? { ok: false, errors } : { ok: true, options };
}
