/**
 * The slice of the Kubernetes Pod schema the injector reads and writes. Input from the API
 * server or a manifest is untrusted: `asPod` checks the shape once, so the pure functions can
 * rely on it.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface ContainerPort {
  containerPort: number;
  name?: string;
  protocol?: string;
  [key: string]: unknown;
}

export interface Probe {
  httpGet?: {
    port: number | string;
    path?: string;
    host?: string;
    scheme?: string;
    httpHeaders?: { name: string; value: string }[];
  };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  exec?: unknown;
  timeoutSeconds?: number;
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  ports?: ContainerPort[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  restartPolicy?: string;
  [key: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: unknown[];
  hostNetwork?: boolean;
  [key: string]: unknown;
}

export interface PodLike {
  metadata?: ObjectMeta;
  spec: PodSpec;
}

export interface NamespaceInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkStringMap(v: unknown, where: string, errors: string[]): void {
  if (v === undefined || v === null) return;
  if (!isRecord(v)) {
    errors.push(`${where} must be a map of strings`);
    return;
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') errors.push(`${where}[${JSON.stringify(k)}] must be a string`);
  }
}

function checkContainers(v: unknown, where: string, required: boolean, errors: string[]): void {
  if (v === undefined || v === null) {
    if (required) errors.push(`${where} is required`);
    return;
  }
  if (!Array.isArray(v)) {
    errors.push(`${where} must be a list`);
    return;
  }
  if (required && v.length === 0) errors.push(`${where} must not be empty`);
  v.forEach((c: unknown, i) => {
    if (!isRecord(c) || typeof c.name !== 'string' || c.name === '') {
      errors.push(`${where}[${i}] must be an object with a name`);
      return;
    }
    if (c.ports !== undefined && c.ports !== null) {
      if (!Array.isArray(c.ports)) errors.push(`${where}[${i}].ports must be a list`);
      else
        c.ports.forEach((p: unknown, j) => {
          if (!isRecord(p) || typeof p.containerPort !== 'number')
            errors.push(`${where}[${i}].ports[${j}].containerPort must be a number`);
        });
    }
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      if (c[probe] !== undefined && c[probe] !== null && !isRecord(c[probe]))
        errors.push(`${where}[${i}].${probe} must be an object`);
    }
  });
}

/** Checks that `v` has the shape of a pod (or pod template); returns the problems found. */
export function podShapeErrors(v: unknown, where = 'pod'): string[] {
  const errors: string[] = [];
  if (!isRecord(v)) return [`${where} must be an object`];
  if (v.metadata !== undefined && v.metadata !== null) {
    if (!isRecord(v.metadata)) errors.push(`${where}.metadata must be an object`);
    else {
      checkStringMap(v.metadata.labels, `${where}.metadata.labels`, errors);
      checkStringMap(v.metadata.annotations, `${where}.metadata.annotations`, errors);
    }
  }
  if (!isRecord(v.spec)) {
    errors.push(`${where}.spec must be an object`);
    return errors;
  }
  checkContainers(v.spec.containers, `${where}.spec.containers`, true, errors);
  checkContainers(v.spec.initContainers, `${where}.spec.initContainers`, false, errors);
  if (v.spec.volumes !== undefined && v.spec.volumes !== null) {
    if (!Array.isArray(v.spec.volumes)) errors.push(`${where}.spec.volumes must be a list`);
    else
      v.spec.volumes.forEach((vol: unknown, i) => {
        if (!isRecord(vol) || typeof vol.name !== 'string') {
          errors.push(`${where}.spec.volumes[${i}] must be an object with a name`);
        }
      });
  }
  return errors;
}

export { isRecord };
