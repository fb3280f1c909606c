export { PORTS, PROXY_UID, PROXY_GID, ANNOTATIONS, ENV, METRICS, VERSION } from './contract.js';
export { RemoraError, ConfigError } from './errors.js';
