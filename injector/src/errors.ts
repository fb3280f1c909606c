/**
 * The injector package's error registry (STYLE.md #5, issue 16): every code `remora-injector`
 * and `remora` raise, once, in `INJECTOR_ERRORS` — the class's name, how it is answered and the
 * message template — with the classes derived from it (the proxy's `registryClass`). Codes are
 * `RMR_INJ_*` (webhook, mesh config, CLI, start-up) and `RMR_CA_*` (the identity CA, whose
 * classes ca/errors.ts re-exports). docs/errors.md lists every code;
 * test/proxy/errors-registry.test.ts checks both registries against it.
 */
import { httpStatusOf, listRegistryClass, registryClass } from '@remora/proxy';
import type { ErrorTable } from '@remora/proxy';

const list = (errors: readonly string[]): string => `\n  - ${errors.join('\n  - ')}`;
const same = (reason: string): string => reason;

export const INJECTOR_ERRORS = {
  RMR_INJ_MESH_CONFIG_INVALID: {
    name: 'MeshConfigError',
    answer: { exit: { remora: 1 } },
    message: (errors: readonly string[]) => `invalid mesh config:${list(errors)}`,
  },
  RMR_INJ_REVIEW_MALFORMED: {
    name: 'MalformedReviewError',
    answer: { http: 400 },
    message: same,
  },
  RMR_INJ_MANIFEST_INVALID: {
    name: 'ManifestError',
    answer: { exit: { remora: 1 } },
    message: (file: string, document: number, reason: string) => `${file}: document ${document}: ${reason}`,
  },
  RMR_INJ_CONFIG_INVALID: {
    name: 'InjectorConfigError',
    answer: { exit: { 'remora-injector': 2 } },
    message: (errors: readonly string[]) => `invalid injector configuration:${list(errors)}`,
  },

  // The identity CA (ca/server.ts answers each with one status and one refusal reason).
  RMR_CA_CSR_INVALID: { name: 'CsrError', answer: { http: 400 }, message: same },
  RMR_CA_TOKEN_REFUSED: { name: 'TokenRefusedError', answer: { http: 401 }, message: same },
  RMR_CA_REVIEW_UNAVAILABLE: { name: 'TokenReviewUnavailableError', answer: { http: 503 }, message: same },
  RMR_CA_ROOT: { name: 'CaRootError', answer: { exit: { 'remora-injector': 1 } }, message: same },
} as const satisfies ErrorTable;

export type InjectorCode = keyof typeof INJECTOR_ERRORS;

/** The registry's areas: every injector code starts `RMR_INJ_` or `RMR_CA_`. */
export const INJECTOR_AREAS: readonly string[] = Object.freeze(['INJ', 'CA']);

/** The HTTP status the registry gives an injector error (500 for a code it answers otherwise). */
export function httpStatus(err: { readonly code: string }): number {
  return httpStatusOf(INJECTOR_ERRORS, err.code) ?? 500;
}

const errorClass = <C extends InjectorCode>(code: C) => registryClass(INJECTOR_ERRORS, code);

/** The mesh config (ConfigMap key or file) does not parse or names unknown or bad fields. */
export class MeshConfigError extends listRegistryClass(INJECTOR_ERRORS, 'RMR_INJ_MESH_CONFIG_INVALID') {}

/** An AdmissionReview that cannot be answered (HTTP 400). */
export class MalformedReviewError extends errorClass('RMR_INJ_REVIEW_MALFORMED') {}

/** A manifest handed to `remora inject` that cannot be read or would be rejected. */
export class ManifestError extends errorClass('RMR_INJ_MANIFEST_INVALID') {}

/** The injector's own start-up settings (env, flags) are invalid. */
export class InjectorConfigError extends listRegistryClass(INJECTOR_ERRORS, 'RMR_INJ_CONFIG_INVALID') {}

/** The CSR is malformed, uses an unsupported key or its self-signature does not verify. */
export class CsrError extends errorClass('RMR_CA_CSR_INVALID') {}

/** The token was refused by the reviewer (unknown, expired, wrong audience). */
export class TokenRefusedError extends errorClass('RMR_CA_TOKEN_REFUSED') {}

/** The token could not be reviewed at all (API server unreachable). */
export class TokenReviewUnavailableError extends errorClass('RMR_CA_REVIEW_UNAVAILABLE') {}

/** The CA root cannot be loaded, stored or generated. */
export class CaRootError extends errorClass('RMR_CA_ROOT') {}
