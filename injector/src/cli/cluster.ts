/**
 * What `remora check` and `remora version` read from a cluster, as one small interface over
 * client-node, so the checks are plain functions of what the cluster answered (STYLE #1, #8).
 * Every method throws the client's error (with its HTTP `code`) and never retries: a CLI reports
 * what it saw.
 */
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  VersionApi,
} from '@kubernetes/client-node';
import type {
  V1ConfigMap,
  V1Deployment,
  V1EndpointSlice,
  V1MutatingWebhookConfiguration,
  V1Namespace,
  V1Pod,
} from '@kubernetes/client-node';

export interface ClusterReader {
  /** The API server's gitVersion, e.g. `v1.35.2`. */
  version(): Promise<string>;
  webhook(name: string): Promise<V1MutatingWebhookConfiguration>;
  deployment(namespace: string, name: string): Promise<V1Deployment>;
  endpointSlices(namespace: string, service: string): Promise<V1EndpointSlice[]>;
  namespaces(): Promise<V1Namespace[]>;
  namespace(name: string): Promise<V1Namespace>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap>;
  /** Pods in every namespace. */
  pods(): Promise<V1Pod[]>;
  /** Creates the pod with `dryRun=All` and returns what admission made of it. */
  dryRunPod(namespace: string, pod: V1Pod): Promise<V1Pod>;
  /** SelfSubjectAccessReview: may the caller do `verb` on `resource`? */
  canI(verb: string, group: string, resource: string, namespace?: string): Promise<boolean>;
}

export interface KubeOptions {
  kubeconfig?: string;
  context?: string;
}

/** Loads the kubeconfig the way kubectl does: the flag, else $KUBECONFIG, else ~/.kube/config. */
export function loadKubeConfig(opts: KubeOptions): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig !== undefined) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  if (opts.context !== undefined) kc.setCurrentContext(opts.context);
  return kc;
}

export function kubeClusterReader(kc: KubeConfig): ClusterReader {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const version = kc.makeApiClient(VersionApi);
  return {
    version: async () => (await version.getCode()).gitVersion,
    webhook: (name) => admission.readMutatingWebhookConfiguration({ name }),
    deployment: (namespace, name) => apps.readNamespacedDeployment({ namespace, name }),
    endpointSlices: async (namespace, service) =>
      (
        await discovery.listNamespacedEndpointSlice({
          namespace,
          labelSelector: `kubernetes.io/service-name=${service}`,
        })
      ).items,
    namespaces: async () => (await core.listNamespace()).items,
    namespace: (name) => core.readNamespace({ name }),
    configMap: (namespace, name) => core.readNamespacedConfigMap({ namespace, name }),
    pods: async () => (await core.listPodForAllNamespaces()).items,
    dryRunPod: (namespace, body) => core.createNamespacedPod({ namespace, body, dryRun: 'All' }),
    canI: async (verb, group, resource, namespace) => {
      const review = await authz.createSelfSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: { resourceAttributes: { verb, group, resource, ...(namespace ? { namespace } : {}) } },
        },
      });
      return review.status?.allowed === true;
    },
  };
}
