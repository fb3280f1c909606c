/**
 * Errors of the identity CA, with stable codes (RMR_CA_...). Each maps to one refusal reason
 * in the security log and one HTTP status in server.ts.
 */
import { RemoraError } from '@remora/proxy';

/** The CSR is malformed, uses an unsupported key or its self-signature does not verify. */
export class CsrError extends RemoraError {
  constructor(reason: string) {
    super('RMR_CA_CSR_INVALID', reason);
  }
}

/** The token was refused by the reviewer (unknown, expired, wrong audience). */
export class TokenRefusedError extends RemoraError {
  constructor(reason: string) {
    super('RMR_CA_TOKEN_REFUSED', reason);
  }
}

/** The token could not be reviewed at all (API server unreachable). */
export class TokenReviewUnavailableError extends RemoraError {
  constructor(reason: string) {
    super('RMR_CA_REVIEW_UNAVAILABLE', reason);
  }
}

/** The CA root cannot be loaded, stored or generated. */
export class CaRootError extends RemoraError {
  constructor(reason: string) {
    super('RMR_CA_ROOT', reason);
  }
}
