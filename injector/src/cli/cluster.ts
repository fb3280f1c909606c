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
  /** Replaces a ConfigMap (its metadata.resourceVersion guards against a concurrent edit). */
  replaceConfigMap(namespace: string, name: string, body: V1ConfigMap): Promise<V1ConfigMap>;
  /** Pods in every namespace. */
  pods(): Promise<V1Pod[]>;
  /** Creates the pod with `dryRun=All` and returns what admission made of it. */
  dryRunPod(namespace: string, pod: V1Pod): Promise<V1Pod>;
  /** SelfSubjectAccessReview: may the caller do `verb` on `resource`? */
  canI(verb: string, group: string, resource: string, namespace?: string): Promise<boolean>;
  /** The owner of a ReplicaSet (its Deployment), if it has a controlling one. */
  replicaSetOwner(namespace: string, name: string): Promise<{ kind: string; name: string } | undefined>;
  /**
   * A rolling restart, as `kubectl rollout restart` does it: the pod template gets the
   * annotation (a new template hash), read-modify-replace on the resourceVersion read.
   */
  restart(
    kind: RestartableKind,
    namespace: string,
    name: string,
    annotation: string,
    value: string,
  ): Promise<void>;
}

export type RestartableKind = 'Deployment' | 'StatefulSet' | 'DaemonSet';

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
    replaceConfigMap: (namespace, name, body) => core.replaceNamespacedConfigMap({ namespace, name, body }),
    pods: async () => (await core.listPodForAllNamespaces()).items,
    dryRunPod: (namespace, body) => core.createNamespacedPod({ namespace, body, dryRun: 'All' }),
    replicaSetOwner: async (namespace, name) => {
      const rs = await apps.readNamespacedReplicaSet({ namespace, name });
      const owner = rs.metadata?.ownerReferences?.find((o) => o.controller === true);
      return owner ? { kind: owner.kind, name: owner.name } : undefined;
    },
    restart: async (kind, namespace, name, annotation, value) => {
      type Workload = { spec?: { template: { metadata?: { annotations?: Record<string, string> } } } };
      const mark = <T extends Workload>(w: T): T => {
        const template = w.spec?.template;
        if (template)
          template.metadata = {
            ...template.metadata,
            annotations: { ...template.metadata?.annotations, [annotation]: value },
          };
        return w;
      };
      if (kind === 'Deployment') {
        const body = mark(await apps.readNamespacedDeployment({ namespace, name }));
        await apps.replaceNamespacedDeployment({ namespace, name, body });
      } else if (kind === 'StatefulSet') {
        const body = mark(await apps.readNamespacedStatefulSet({ namespace, name }));
        await apps.replaceNamespacedStatefulSet({ namespace, name, body });
      } else {
        const body = mark(await apps.readNamespacedDaemonSet({ namespace, name }));
        await apps.replaceNamespacedDaemonSet({ namespace, name, body });
      }
    },
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
