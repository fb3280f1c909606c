/**
 * The injector's start-up settings, from env and flags, parsed in one place (STYLE #4): a frozen
 * config or every error at once, before any port is bound.
 */
import { INJECTOR, INJECTOR_ENV, LOG_LEVELS, POLICY_CONFIGMAP } from '@remora/proxy/contract';
import type { LogLevel } from '@remora/proxy/contract';
import { parseBindPort, parseDnsLabel, parseDnsSubdomain } from '@remora/proxy/values';
import { InjectorConfigError } from './errors.js';

export interface InjectorConfig {
  host: string;
  port: number;
  tlsDir: string;
  namespace: string;
  serviceName: string;
  webhookConfigName: string;
  meshConfigMap: { namespace: string; name: string };
  meshConfigKey: string;
  /** `--mesh-config FILE`: read the mesh config from a file instead of the ConfigMap. */
  meshConfigFile?: string;
  /** The policy document served to proxies, from a file (outside Kubernetes; wins)... */
  policyFile?: string;
  /** ...or from this ConfigMap (key POLICY_CONFIGMAP.key), default remora-policy in `namespace`. */
  policyConfigMap: { namespace: string; name: string };
  /** Talk to Kubernetes (in a cluster, or `--kubeconfig`); false outside it. */
  kubernetes: boolean;
  kubeconfig?: string;
  logLevel: LogLevel;
}

export const USAGE = `usage: remora-injector [--mesh-config FILE] [--kubeconfig FILE] [--no-kubernetes] [--host ADDR]
env: ${Object.values(INJECTOR_ENV).join(', ')}`;

export function parseInjectorConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[],
): InjectorConfig {
  const errors: string[] = [];
  const namespace = env[INJECTOR_ENV.namespace] || INJECTOR.namespace;
  let port: number = INJECTOR.port;
  const rawPort = env[INJECTOR_ENV.port];
  if (rawPort !== undefined && rawPort !== '') {
    const p = parseBindPort(rawPort);
    if (!p.ok) errors.push(`${INJECTOR_ENV.port}: ${JSON.stringify(rawPort)} must be a port 0-65535`);
    else port = p.value;
  }
  const configMapRef = (key: 'meshConfigMap' | 'policyConfigMap', name: string) => {
    const raw = env[INJECTOR_ENV[key]];
    if (raw === undefined || raw === '') return { namespace, name };
    const [ns = '', n = '', ...rest] = raw.split('/');
    if (rest.length === 0 && parseDnsLabel(ns).ok && parseDnsSubdomain(n).ok)
      return { namespace: ns, name: n };
    errors.push(`${INJECTOR_ENV[key]}: ${JSON.stringify(raw)} must be namespace/name`);
    return { namespace, name };
  };
  const meshConfigMap = configMapRef('meshConfigMap', INJECTOR.meshConfigMap);
  const policyConfigMap = configMapRef('policyConfigMap', POLICY_CONFIGMAP.name);
  const rawLevel = env[INJECTOR_ENV.logLevel] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(rawLevel)) {
    errors.push(
      `${INJECTOR_ENV.logLevel}: ${JSON.stringify(rawLevel)} must be one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  let meshConfigFile: string | undefined;
  let kubeconfig: string | undefined;
  let host = '0.0.0.0';
  let noKubernetes = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const next = (): string | undefined => {
      const v = argv[++i];
      if (v === undefined) errors.push(`${a} needs a value`);
      return v;
    };
    if (a === '--mesh-config') meshConfigFile = next();
    else if (a === '--kubeconfig') kubeconfig = next();
    else if (a === '--host') host = next() ?? host;
    else if (a === '--no-kubernetes') noKubernetes = true;
    else errors.push(`unknown argument ${JSON.stringify(a)}`);
  }
  if (errors.length > 0) throw new InjectorConfigError(errors);
  const config: InjectorConfig = {
    host,
    port,
    tlsDir: env[INJECTOR_ENV.tlsDir] || INJECTOR.tlsDir,
    namespace,
    serviceName: INJECTOR.serviceName,
    webhookConfigName: env[INJECTOR_ENV.webhookConfigName] || INJECTOR.webhookConfigName,
    meshConfigMap,
    meshConfigKey: INJECTOR.meshConfigKey,
    policyConfigMap,
    kubernetes: !noKubernetes && (kubeconfig !== undefined || Boolean(env.KUBERNETES_SERVICE_HOST)),
    logLevel: rawLevel as LogLevel,
  };
  if (meshConfigFile !== undefined) config.meshConfigFile = meshConfigFile;
  const policyFile = env[INJECTOR_ENV.policyFile];
  if (policyFile !== undefined && policyFile !== '') config.policyFile = policyFile;
  if (kubeconfig !== undefined) config.kubeconfig = kubeconfig;
  return Object.freeze(config);
}
