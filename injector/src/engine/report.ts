/**
 * In Kubernetes, what a proxy reports about its engine becomes its pod's annotation
 * `remora.dev/engine` (JSON: version, desired, state, detail, at), which `remora upgrade
 * --version` reads to follow a rollout per pod. A proxy may speak only for its own pod: the pod
 * it names must have the caller's address as its IP, and run as the service account and in the
 * namespace of the caller's certificate; anything else is refused and logged at warn.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ENGINE_ANNOTATION } from '@remora/proxy/contract';
import type { StreamClient } from '../ca/ndjson.js';
import type { EngineReport } from './routes.js';

/** Whether `identity` (spiffe://<td>/ns/<ns>/sa/<sa>) may speak for a pod with these fields. */
export function reportAllowed(
  identity: string,
  peer: string,
  pod: { namespace?: string; serviceAccount?: string; podIPs: readonly string[] },
): string | undefined {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(identity);
  if (m === null) return `identity ${identity} is not a workload identity`;
  if (m[1] !== pod.namespace) return `identity ${identity} is not of namespace ${pod.namespace ?? '?'}`;
  if (m[2] !== (pod.serviceAccount ?? 'default'))
    return `identity ${identity} is not the pod's service account`;
  const addr = peer.replace(/^::ffff:/, '');
  if (!pod.podIPs.includes(addr)) return `the report came from ${addr}, not from the pod's IP`;
  return undefined;
}

export function podReporter(
  core: CoreV1Api,
  logger: Logger,
): (client: StreamClient, peer: string, report: EngineReport) => void {
  const write = async (client: StreamClient, peer: string, r: EngineReport): Promise<void> => {
    if (r.pod === null || r.namespace === null) return;
    for (let attempt = 0; attempt < 2; attempt++) {
      const pod = await core.readNamespacedPod({ namespace: r.namespace, name: r.pod });
      const refused = reportAllowed(client.identity, peer, {
        ...(pod.metadata?.namespace !== undefined ? { namespace: pod.metadata.namespace } : {}),
        ...(pod.spec?.serviceAccountName !== undefined
          ? { serviceAccount: pod.spec.serviceAccountName }
          : {}),
        podIPs: (pod.status?.podIPs ?? []).map((p) => p.ip).concat(pod.status?.podIP ?? []),
      });
      if (refused !== undefined) {
        logger.warn(
          {
            event: 'engine_report_refused',
            pod: `${r.namespace}/${r.pod}`,
            identity: client.identity,
            peer,
            reason: refused,
          },
          `engine report refused: ${refused}`,
        );
        return;
      }
      const value = JSON.stringify({
        version: r.version,
        desired: r.desired,
        state: r.state,
        detail: r.detail,
        at: r.at,
      });
      pod.metadata = {
        ...pod.metadata,
        annotations: { ...pod.metadata?.annotations, [ENGINE_ANNOTATION]: value },
      };
      try {
        await core.replaceNamespacedPod({ namespace: r.namespace, name: r.pod, body: pod });
        return;
      } catch (err) {
        // a concurrent change (409): read again once
        if ((err as { code?: number }).code !== 409 || attempt === 1) throw err;
      }
    }
  };
  return (client, peer, report) => {
    write(client, peer, report).catch((err: unknown) =>
      logger.warn(
        { event: 'engine_report_unwritten', pod: `${report.namespace ?? '?'}/${report.pod ?? '?'}`, err },
        `cannot write the engine annotation: ${(err as Error).message}`,
      ),
    );
  };
}
