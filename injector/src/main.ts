/**
 * remora-injector's wiring: config → logger → mesh config source → namespace lister → TLS →
 * webhook, and the periodic reconcile (certificate renewal, CA bundle). Every piece is built
 * elsewhere; this file only connects them and owns their lifetimes.
 */
import {
  AdmissionregistrationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
} from '@kubernetes/client-node';
import { INJECT_LABEL, VERSION } from '@remora/proxy/contract';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { parseCaConfig } from './ca/config.js';
import type { CaConfig, CaConfigProbe } from './ca/config.js';
import { startIdentityCa } from './ca/start.js';
import { parseInjectorConfig, USAGE } from './config.js';
import type { InjectorConfig } from './config.js';
import { MeshConfigStore, watchMeshConfigMap, watchMeshFile } from './config/watch.js';
import { InjectorConfigError } from './errors.js';
import { engineRoutes } from './engine/routes.js';
import { BundleDir } from './engine/bundles.js';
import { Leases } from './engine/leases.js';
import { KubeLeases } from './engine/kube-leases.js';
import { EngineStatusWriter } from './engine/status.js';
import { ensureCaBundle } from './k8s/cabundle.js';
import { startNamespaceLister } from './k8s/namespaces.js';
import { publishTrustBundle } from './k8s/trustbundle.js';
import { startPolicySource } from './policy/source.js';
import { PolicyStore } from './policy/store.js';
import { policyRoute } from './policy/stream.js';
import { InjectorMetrics } from './webhook/metrics.js';
import { startWebhook } from './webhook/server.js';
import type { NamespaceLister, Webhook } from './webhook/server.js';
import { SelfSignedTls, loadMountedTls, serviceDnsNames } from './webhook/tls.js';

const RECONCILE_MS = 60_000;

export interface Running {
  webhook: Webhook;
  stop(): Promise<void>;
}

export async function startInjector(
  config: InjectorConfig,
  logger: Logger,
  caConfig?: CaConfig,
): Promise<Running> {
  const stops: (() => void | Promise<void>)[] = [];
  const store = new MeshConfigStore(logger);
  const metrics = new InjectorMetrics();
  let kc: KubeConfig | undefined;
  if (config.kubernetes) {
    kc = new KubeConfig();
    if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  }

  if (config.meshConfigFile !== undefined) stops.push(watchMeshFile(config.meshConfigFile, store));
  else if (kc) {
    const { namespace, name } = config.meshConfigMap;
    stops.push(await watchMeshConfigMap(kc, namespace, name, config.meshConfigKey, store, logger));
  } else store.loaded = true; // outside Kubernetes without a file: the defaults

  // The policy document rides next to discovery on the CA listener (proxies already trust it).
  // Read before anything listens: a bad policy file stops the start (InjectorConfigError).
  let policy: PolicyStore | undefined;
  if (caConfig) {
    policy = new PolicyStore(logger, metrics);
    try {
      stops.push(
        await startPolicySource({
          file: config.policyFile,
          configMap: config.policyConfigMap,
          kc,
          store: policy,
          logger,
        }),
      );
    } catch (err) {
      for (const stop of stops) await stop();
      throw err;
    }
  }

  let namespaces: NamespaceLister;
  let namespacesSynced = (): boolean => true;
  let nsLister: Awaited<ReturnType<typeof startNamespaceLister>> | undefined;
  if (kc) {
    const l = await startNamespaceLister(kc, logger);
    nsLister = l;
    namespaces = l.lister;
    namespacesSynced = l.synced;
    stops.push(l.stop);
  } else {
    // Outside Kubernetes (tests, benchmarks) every namespace counts as enabled.
    namespaces = (name) => ({ name, labels: { [INJECT_LABEL]: 'enabled' } });
  }

  const mounted = loadMountedTls(config.tlsDir);
  const selfSigned = mounted
    ? undefined
    : new SelfSignedTls({ dnsNames: serviceDnsNames(config.serviceName, config.namespace) });
  let bundlePublished = mounted !== undefined || !kc;
  let publishBundles = async (): Promise<void> => undefined;
  const webhookApi = kc?.makeApiClient(AdmissionregistrationV1Api);
  const publish = async (): Promise<void> => {
    if (!selfSigned || !webhookApi) return;
    try {
      const r = await ensureCaBundle(webhookApi, config.webhookConfigName, selfSigned.caPem());
      if (r === 'updated')
        logger.info({ event: 'ca_bundle_updated', webhook: config.webhookConfigName }, 'CA bundle written');
      bundlePublished = true;
    } catch (err) {
      logger.warn(
        { event: 'ca_bundle_failed', err },
        `cannot write the CA bundle: ${(err as Error).message}`,
      );
    }
  };

  const tls = mounted ?? (selfSigned as SelfSignedTls).material();
  const webhook = await startWebhook({
    host: config.host,
    port: config.port,
    tls,
    mesh: store.current,
    namespaces,
    logger,
    metrics,
    ready: () => store.loaded && namespacesSynced() && bundlePublished,
  });
  logger.info(
    { event: 'started', port: webhook.port, version: VERSION, tls: mounted ? 'mounted' : 'self-signed' },
    'remora-injector listening',
  );
  await publish();
  if (caConfig) {
    // Engine bundles, the version proxies should run and upgrade leases (docs/upgrades.md).
    const status = kc
      ? new EngineStatusWriter(kc.makeApiClient(CoreV1Api), config.namespace, logger)
      : undefined;
    const engine = engineRoutes({
      bundles: new BundleDir(config.engineBundleDir),
      mesh: store.current,
      // In Kubernetes the bound holds across injector replicas (Lease objects); outside, in memory.
      leases: kc ? new KubeLeases(kc.makeApiClient(CoordinationV1Api), config.namespace) : new Leases(),
      logger,
      ...(status ? { onReport: status.record } : {}),
    });
    stops.push(() => {
      engine.stop();
      status?.stop();
    });
    const ca = await startIdentityCa({
      config: caConfig,
      kc,
      namespace: config.namespace,
      host: config.host,
      logger,
      dnsNames: serviceDnsNames(config.serviceName, config.namespace),
      routes: [...(policy ? [policyRoute(policy)] : []), ...engine.routes],
    });
    stops.push(() => ca.close());
    metrics.observeCa(ca);
    if (kc && nsLister) {
      // Injected pods mount the trust bundle from their own namespace (docs/injector.md).
      const core = kc.makeApiClient(CoreV1Api);
      const l = nsLister;
      publishBundles = () => publishTrustBundle(core, l.names(), ca.trustBundle, logger);
      l.onAdd((name) => {
        void publishTrustBundle(core, [name], ca.trustBundle, logger);
      });
      await publishBundles();
    }
  }

  let lastMounted = mounted ? mounted.cert + mounted.key : '';
  let ticks = 0;
  const reconcile = async (): Promise<void> => {
    // Every 10 minutes: repairs a deleted or edited trust bundle ConfigMap.
    if (++ticks % 10 === 0) await publishBundles();
    if (selfSigned) {
      if (selfSigned.renewCaIfDue()) await publish();
      // Serve a certificate from a new CA only once that CA is published.
      if (bundlePublished && selfSigned.renewLeafIfDue()) webhook.setTls(selfSigned.material());
      await publish();
    } else {
      const now = loadMountedTls(config.tlsDir);
      if (now && now.cert + now.key !== lastMounted) {
        webhook.setTls(now);
        lastMounted = now.cert + now.key;
        logger.info({ event: 'tls_reloaded', dir: config.tlsDir }, 'serving certificate reloaded');
      }
    }
  };
  const timer = setInterval(() => {
    reconcile().catch((err: unknown) => logger.warn({ err, event: 'reconcile_failed' }, 'reconcile failed'));
  }, RECONCILE_MS);
  timer.unref();
  return {
    webhook,
    async stop() {
      clearInterval(timer);
      await webhook.close();
      for (const s of stops) await s();
    },
  };
}

export async function main(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  probe?: CaConfigProbe,
): Promise<void> {
  let config: InjectorConfig;
  let caConfig: CaConfig;
  try {
    config = parseInjectorConfig(env, argv);
    caConfig = parseCaConfig(env, probe);
  } catch (err) {
    process.stderr.write(
      `remora-injector: ${err instanceof InjectorConfigError ? err.message : String(err)}\n${USAGE}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const logger = pino({ level: config.logLevel, base: { component: 'remora-injector' } });
  let running: Running;
  try {
    running = await startInjector(config, logger, caConfig);
  } catch (err) {
    // A bad policy file is found only once the sources start; it stops the start all the same.
    if (!(err instanceof InjectorConfigError)) throw err;
    process.stderr.write(`remora-injector: ${err.message}\n`);
    process.exitCode = 2;
    return;
  }
  const shutdown = (signal: string): void => {
    logger.info({ event: 'stopping', signal }, 'remora-injector stopping');
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
