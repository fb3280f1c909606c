// The injector package's public surface (STYLE #12): the pure injection core, the webhook, the
// certificate builder and the CLI entry. Everything else is internal.
export { VERSION } from '@remora/proxy/contract';
export { decide, SKIP_REASONS, INJECT_REASONS } from './inject/decide.js';
export type { Decision, SkipReason, InjectReason } from './inject/decide.js';
export { parseAnnotations } from './inject/annotations.js';
export type { InjectOptions } from './inject/annotations.js';
export { buildPatch, podConflicts } from './inject/patch.js';
export { evaluate } from './inject/evaluate.js';
export type { Outcome } from './inject/evaluate.js';
export { applyPatch, escapePointer, pointer } from './inject/jsonpatch.js';
export type { JsonPatchOp } from './inject/jsonpatch.js';
export type { PodLike, NamespaceInfo } from './inject/types.js';
export { DEFAULT_MESH_CONFIG, parseMeshConfig } from './config/mesh.js';
export type { MeshConfig } from './config/mesh.js';
export { startWebhook, MAX_BODY_BYTES } from './webhook/server.js';
export type { Webhook, WebhookOptions, NamespaceLister, TlsMaterial } from './webhook/server.js';
export { createCertificate, generateKey, parsePemBundle } from './pki/x509.js';
export { createCa, issue } from './pki/ca.js';
export { injectManifests } from './cli/inject.js';
export { runCli } from './cli/main.js';
export { MeshConfigError, MalformedReviewError, ManifestError, InjectorConfigError } from './errors.js';
