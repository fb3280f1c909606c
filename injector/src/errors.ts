/**
 * Every error the injector raises on purpose, in one file (STYLE.md #5): a stable `code`
 * (`RMR_INJ_...`, never reused) and a name. The webhook maps them to answers in one place.
 */
import { RemoraError } from '@remora/proxy';

/** The mesh config (ConfigMap key or file) does not parse or names unknown or bad fields. */
export class MeshConfigError extends RemoraError {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super('RMR_INJ_MESH_CONFIG_INVALID', `invalid mesh config:\n  - ${errors.join('\n  - ')}`);
    this.errors = Object.freeze([...errors]);
  }
}

/** An AdmissionReview that cannot be answered (HTTP 400). */
export class MalformedReviewError extends RemoraError {
  constructor(reason: string) {
    super('RMR_INJ_REVIEW_MALFORMED', reason);
  }
}

/** A manifest handed to `remora inject` that cannot be read or would be rejected. */
export class ManifestError extends RemoraError {
  constructor(file: string, document: number, reason: string) {
    super('RMR_INJ_MANIFEST_INVALID', `${file}: document ${document}: ${reason}`);
  }
}

/** The injector's own start-up settings (env, flags) are invalid. */
export class InjectorConfigError extends RemoraError {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super('RMR_INJ_CONFIG_INVALID', `invalid injector configuration:\n  - ${errors.join('\n  - ')}`);
    this.errors = Object.freeze([...errors]);
  }
}
