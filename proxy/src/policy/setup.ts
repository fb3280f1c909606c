/**
 * Builds the engine's policy from the config, for main.ts and engine-child.ts alike: the file
 * (REMORA_POLICY_FILE, loaded now: an invalid file throws ConfigError) wins; else the
 * injector's stream next to discovery (REMORA_DISCOVERY_ADDRESS); else no policy at all, and
 * the engine's hot path stays as it was.
 */
import { readFileSync } from 'node:fs';
import { ENV, INJECTOR } from '../contract.js';
import type { ProxyConfig } from '../config/config.js';
import type { ClientCredentials } from '../discovery/ndjson.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../metrics/registry.js';
import { followPolicyFile } from './file.js';
import { PolicyHolder } from './holder.js';
import { PolicyMetrics } from './metrics.js';
import { PolicyStream } from './stream.js';
import type { WorkloadRef } from './types.js';

export interface PolicyRuntime {
  readonly holder: PolicyHolder;
  readonly metrics: PolicyMetrics;
  close(): void;
}

export function createPolicy(
  c: ProxyConfig,
  log: Logger,
  registry: Registry,
  /** the workload certificate the stream presents (the injector refuses streams without one) */
  credentials?: ClientCredentials,
): PolicyRuntime | undefined {
  const self: WorkloadRef = { namespace: c.podNamespace, workload: c.workload };
  const metrics = PolicyMetrics.of(registry);
  if (c.policyFile !== undefined) {
    const holder = new PolicyHolder({ self, metrics, log, source: `file ${c.policyFile}` });
    const stop = followPolicyFile(c.policyFile, holder, log);
    return { holder, metrics, close: stop };
  }
  if (c.discoveryAddress === undefined) return undefined;
  let caBundle: string;
  try {
    caBundle = readFileSync(c.caBundleFile ?? '', 'utf8');
  } catch (err) {
    throw new ConfigError([
      `${ENV.caBundleFile}: cannot read ${c.caBundleFile ?? '(unset)'}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    ]);
  }
  const { host, port } = c.discoveryAddress;
  const holder = new PolicyHolder({ self, metrics, log, source: `stream ${host}:${port}` });
  const stream = new PolicyStream({
    address: c.discoveryAddress,
    caBundle,
    // The same identity the injector proves on its CA and discovery listener.
    serverIdentity: `spiffe://${c.trustDomain}/ns/${INJECTOR.namespace}/sa/${INJECTOR.serviceAccount}`,
    self,
    holder,
    log,
    ...(credentials !== undefined ? { credentials } : {}),
  });
  return { holder, metrics, close: () => stream.close() };
}
