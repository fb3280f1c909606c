export { PORTS, PROXY_UID, PROXY_GID, ANNOTATIONS, ENV, METRICS, VERSION } from './contract.js';
export { RemoraError, ConfigError, registryClass, listRegistryClass, httpStatusOf } from './errors.js';
export type { Answer, Binary, ErrorSpec, ErrorTable, ListCode, MessageArgs } from './errors.js';
