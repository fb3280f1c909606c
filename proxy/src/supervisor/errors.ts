/**
 * The supervisor's errors (codes RMR_SUP_*, never reused). Kept beside the supervisor rather
 * than in proxy/src/errors.ts so the two can be edited in parallel; same base class and rules.
 */
import { RemoraError } from '../errors.js';

/** A new engine did not become ready; the running one keeps serving (automatic rollback). */
export class EngineStartError extends RemoraError {
  constructor(reason: string) {
    super('RMR_SUP_ENGINE_START', `engine did not become ready: ${reason}`);
  }
}

/** An upgrade request that names a missing or malformed version, or invalid config. */
export class UpgradeRequestError extends RemoraError {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super('RMR_SUP_UPGRADE_INVALID', `invalid upgrade request: ${errors.join('; ')}`);
    this.errors = Object.freeze([...errors]);
  }
}

/** Another upgrade (or a shutdown) is already in progress. */
export class UpgradeBusyError extends RemoraError {
  constructor(what: string) {
    super('RMR_SUP_BUSY', `cannot upgrade now: ${what}`);
  }
}

/** An engine sent a message that is not part of the IPC protocol. */
export class IpcProtocolError extends RemoraError {
  constructor(detail: string) {
    super('RMR_SUP_IPC', `engine IPC protocol error: ${detail}`);
  }
}

/** An engine bundle that cannot be used (malformed archive, over a cap, wrong manifest). */
export class BundleError extends RemoraError {
  constructor(detail: string) {
    super('RMR_SUP_BUNDLE', `engine bundle refused: ${detail}`);
  }
}

/** An engine bundle whose sha256 is not the digest the control plane announced: nothing runs. */
export class BundleDigestError extends RemoraError {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super('RMR_SUP_BUNDLE_DIGEST', `engine bundle digest mismatch: expected ${expected}, got ${actual}`);
  }
}
