/**
 * Wiring of the identity CA: root (mounted dir, Secret, or generated), token reviewer (static
 * file or TokenReview), then the listener. The injector's main calls this once.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { INJECTOR, INJECTOR_ENV } from '@remora/proxy/contract';
import type { Logger } from 'pino';
import { startKubernetesDiscovery } from '../discovery/kubernetes.js';
import type { KubernetesSource } from '../discovery/kubernetes.js';
import { DiscoveryStore } from '../discovery/store.js';
import { watchStaticDiscovery } from '../discovery/static.js';
import { discoveryRoute } from '../discovery/stream.js';
import type { Ca } from '../pki/ca.js';
import type { CaConfig } from './config.js';
import { TokenReviewUnavailableError } from './errors.js';
import { loadOrCreateRootSecret, loadRootDir, newRoot } from './root.js';
import { startCaServer } from './server.js';
import type { CaServer, Route } from './server.js';
import { kubeTokenReviewer, loadStaticTokens, staticTokenReviewer } from './tokens.js';
import type { TokenReviewer } from './tokens.js';

export interface IdentityCaOptions {
  readonly config: CaConfig;
  readonly kc: KubeConfig | undefined;
  readonly namespace: string;
  readonly host?: string;
  readonly logger: Logger;
  readonly dnsNames?: readonly string[];
  readonly routes?: readonly Route[];
}

export async function startIdentityCa(o: IdentityCaOptions): Promise<CaServer> {
  const c = o.config;
  let ca: Ca;
  let source: string;
  const mounted = c.caDir !== undefined ? loadRootDir(c.caDir) : undefined;
  if (mounted) {
    ca = mounted;
    source = `dir ${c.caDir}`;
  } else if (o.kc) {
    const r = await loadOrCreateRootSecret(o.kc, o.namespace, INJECTOR.caSecretName, c.trustDomain);
    ca = r.ca;
    source = `Secret ${o.namespace}/${INJECTOR.caSecretName}${r.created ? ' (created)' : ''}`;
  } else {
    ca = newRoot(c.trustDomain);
    source = 'generated in memory';
  }
  let reviewer: TokenReviewer;
  /** which reviewer answers, for the start-up log: an operator must see a stand-in at once */
  let reviewerName: 'static-file' | 'token-review' | 'none';
  if (c.staticTokensFile !== undefined) {
    reviewer = staticTokenReviewer(loadStaticTokens(c.staticTokensFile));
    reviewerName = 'static-file';
    if (c.staticTokensForced)
      o.logger.warn(
        { event: 'static_tokens_forced', file: c.staticTokensFile },
        `${INJECTOR_ENV.staticTokens} replaces TokenReview although in-cluster credentials are present (${INJECTOR_ENV.allowStaticTokens}=true)`,
      );
  } else if (o.kc) {
    reviewer = kubeTokenReviewer(o.kc);
    reviewerName = 'token-review';
  } else {
    reviewerName = 'none';
    reviewer = () =>
      Promise.reject(
        new TokenReviewUnavailableError('no token reviewer: set REMORA_STATIC_TOKENS outside Kubernetes'),
      );
  }
  const routes = [...(o.routes ?? [])];
  let stopDiscovery = (): void => undefined;
  if (c.discoveryFile !== undefined) {
    const store = new DiscoveryStore();
    stopDiscovery = watchStaticDiscovery(c.discoveryFile, store, o.logger);
    routes.push(discoveryRoute(store));
  } else if (o.kc) {
    // In Kubernetes: informers. Started in the background: the CA must not wait on (or fail
    // with) the watches; until they sync, destinations answer "unknown" and proxies dial directly.
    const store = new DiscoveryStore();
    routes.push(discoveryRoute(store));
    let source: KubernetesSource | undefined;
    let stopped = false;
    startKubernetesDiscovery(o.kc, store, c.trustDomain, o.logger).then(
      (s) => {
        source = s;
        if (stopped) s.stop();
      },
      (err: unknown) =>
        o.logger.warn({ event: 'discovery_start_failed', err }, 'Kubernetes discovery did not start'),
    );
    stopDiscovery = () => {
      stopped = true;
      source?.stop();
    };
  }
  const server = await startCaServer({
    ...(o.host !== undefined ? { host: o.host } : {}),
    port: c.port,
    ca,
    trustDomain: c.trustDomain,
    reviewer,
    ttlSeconds: c.ttlSeconds,
    streamLimits: c.streamLimits,
    logger: o.logger,
    namespace: o.namespace,
    serviceAccount: INJECTOR.serviceAccount,
    ...(o.dnsNames ? { dnsNames: o.dnsNames } : {}),
    routes,
  });
  o.logger.info(
    {
      event: 'ca_started',
      port: server.port,
      root: source,
      trustDomain: c.trustDomain,
      identity: server.identity,
      reviewer: reviewerName,
      ...(reviewerName === 'static-file' ? { staticTokens: c.staticTokensFile } : {}),
    },
    `identity CA listening (token reviewer: ${reviewerName})`,
  );
  return {
    ...server,
    close: async () => {
      stopDiscovery();
      await server.close();
    },
  };
}
