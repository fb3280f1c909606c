/**
 * admission.k8s.io/v1 AdmissionReview: decode (rejecting what cannot be answered), and encode the
 * answer. Pure: the server does the I/O, `evaluate` does the deciding.
 */
import { MalformedReviewError } from '../errors.js';
import { isRecord, podShapeErrors } from '../inject/types.js';
import type { PodLike } from '../inject/types.js';
import type { JsonPatchOp } from '../inject/jsonpatch.js';

export const REVIEW_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: string;
  subResource?: string;
  namespace?: string;
  name?: string;
  dryRun: boolean;
  object: unknown;
}

/** The pod part of a review that will be evaluated, checked for shape. */
export interface PodReview {
  pod: PodLike;
  namespace: string;
  name: string;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function parseReview(body: unknown): AdmissionRequest {
  if (!isRecord(body)) throw new MalformedReviewError('body must be a JSON object (an AdmissionReview)');
  if (body.kind !== 'AdmissionReview') throw new MalformedReviewError('kind must be AdmissionReview');
  if (body.apiVersion !== REVIEW_API_VERSION) {
    throw new MalformedReviewError(`apiVersion must be ${REVIEW_API_VERSION}`);
  }
  const r = body.request;
  if (!isRecord(r)) throw new MalformedReviewError('request is missing');
  const uid = str(r.uid);
  if (uid === undefined || uid === '' || uid.length > 256)
    throw new MalformedReviewError('request.uid is missing');
  if (!isRecord(r.kind) || typeof r.kind.kind !== 'string') {
    throw new MalformedReviewError('request.kind must be {group, version, kind}');
  }
  const operation = str(r.operation);
  if (operation === undefined) throw new MalformedReviewError('request.operation is missing');
  if (r.dryRun !== undefined && typeof r.dryRun !== 'boolean') {
    throw new MalformedReviewError('request.dryRun must be a boolean');
  }
  const out: AdmissionRequest = {
    uid,
    kind: { group: str(r.kind.group) ?? '', version: str(r.kind.version) ?? '', kind: r.kind.kind },
    operation,
    dryRun: r.dryRun === true,
    object: r.object,
  };
  const sub = str(r.subResource);
  if (sub !== undefined && sub !== '') out.subResource = sub;
  const ns = str(r.namespace);
  if (ns !== undefined && ns !== '') out.namespace = ns;
  const name = str(r.name);
  if (name !== undefined && name !== '') out.name = name;
  return out;
}

/** Whether the review is a Pod CREATE, the only thing the injector changes. */
export function isPodCreate(r: AdmissionRequest): boolean {
  return (
    r.operation === 'CREATE' && r.kind.group === '' && r.kind.kind === 'Pod' && r.subResource === undefined
  );
}

export function podOf(r: AdmissionRequest): PodReview {
  const errors = podShapeErrors(r.object, 'request.object');
  if (errors.length > 0) throw new MalformedReviewError(errors.slice(0, 5).join('; '));
  const pod = r.object as PodLike;
  const namespace = r.namespace ?? pod.metadata?.namespace;
  if (namespace === undefined || namespace === '')
    throw new MalformedReviewError('request.namespace is missing');
  const name = pod.metadata?.name ?? r.name ?? `${pod.metadata?.generateName ?? ''}<generated>`;
  return { pod, namespace, name };
}

export function allow(uid: string, patch?: readonly JsonPatchOp[]): Record<string, unknown> {
  const response: Record<string, unknown> = { uid, allowed: true };
  if (patch && patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  }
  return { apiVersion: REVIEW_API_VERSION, kind: 'AdmissionReview', response };
}

export function deny(uid: string, message: string): Record<string, unknown> {
  return {
    apiVersion: REVIEW_API_VERSION,
    kind: 'AdmissionReview',
    response: { uid, allowed: false, status: { code: 400, reason: 'BadRequest', message } },
  };
}
