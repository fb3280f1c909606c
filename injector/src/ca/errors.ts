/**
 * The identity CA's errors (codes RMR_CA_*) now live in the injector's one registry,
 * injector/src/errors.ts (issue 16); this module keeps their old import path.
 */
export { CaRootError, CsrError, TokenRefusedError, TokenReviewUnavailableError } from '../errors.js';
