/** Kubernetes schema validation of manifests through kubernetes-models. */
import { Pod } from 'kubernetes-models/v1/Pod';
import { ReplicationController } from 'kubernetes-models/v1/ReplicationController';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { CronJob as CronJobV1beta1 } from 'kubernetes-models/batch/v1beta1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';

type Model = new (data: never) => { validate(): void };

const MODELS: Record<string, Model> = {
  'v1/Pod': Pod as unknown as Model,
  'v1/ReplicationController': ReplicationController as unknown as Model,
  'apps/v1/Deployment': Deployment as unknown as Model,
  'apps/v1/StatefulSet': StatefulSet as unknown as Model,
  'apps/v1/DaemonSet': DaemonSet as unknown as Model,
  'apps/v1/ReplicaSet': ReplicaSet as unknown as Model,
  'batch/v1/Job': Job as unknown as Model,
  'batch/v1/CronJob': CronJob as unknown as Model,
  'batch/v1beta1/CronJob': CronJobV1beta1 as unknown as Model,
};

const CANONICAL: Record<string, string> = {
  Pod: 'v1',
  ReplicationController: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  ReplicaSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
};

/**
 * Validates a workload against its schema; throws with the schema errors. An object filed under
 * the wrong apiVersion (the Linkerd corpus has `apps/v1` Pods) is checked against its kind's
 * canonical apiVersion, since the pod spec is what the injector writes.
 */
export function validateWorkload(obj: { apiVersion?: string; kind?: string }): void {
  const kind = obj.kind ?? '';
  let key = `${obj.apiVersion}/${kind}`;
  let data: unknown = obj;
  if (!MODELS[key] && CANONICAL[kind]) {
    key = `${CANONICAL[kind]}/${kind}`;
    data = { ...obj, apiVersion: CANONICAL[kind] };
  }
  const M = MODELS[key];
  if (!M) throw new Error(`no schema for ${key}`);
  new M(data as never).validate();
}
