/**
 * The supervisor's errors (codes RMR_SUP_*) now live in the proxy's one registry,
 * proxy/src/errors.ts (issue 16); this module keeps their old import path.
 */
export { EngineStartError, IpcProtocolError, UpgradeBusyError, UpgradeRequestError } from '../errors.js';
