/**
 * The engine's public API. Separate from index.ts on purpose: index.ts stays dependency-free
 * (contract + errors), because the injector image carries only those few compiled modules of
 * this package (Dockerfile.injector); this entry pulls in undici, pino and the native addon.
 */
export { PORTS, ENV, METRICS, VERSION } from './contract.js';
export {
  RemoraError,
  ConfigError,
  ProxyError,
  UpstreamConnectError,
  UpstreamResetError,
  UpstreamTimeoutError,
  UpstreamProtocolError,
  NoTargetError,
  PolicyDeniedError,
  OverloadError,
  TooManyHeadersError,
  BadRequestError,
  HeadersTooLargeError,
} from './errors.js';
export type { FailureKind } from './errors.js';
export { parseConfig, publicConfig, DEFAULTS } from './config/config.js';
export { PROXY_LOG_LEVELS } from './contract.js';
export type { ProxyConfig, Target, LogLevel } from './config/config.js';
export { loadConfig } from './config/load.js';
export { Engine } from './engine.js';
export type { EngineOptions, EngineState } from './engine.js';
export { openListener, LISTENER_NAMES } from './listeners.js';
export type { HandedListener, HandedListeners, Listener, ListenerName } from './listeners.js';
export { originalDestination, addonLoadError } from './capture/origdst.js';
export type { OriginalDestination } from './capture/origdst.js';
export { compose, RequestContext } from './http/layer.js';
export type { Handler, Layer, DoneListener } from './http/layer.js';
export { rescue, classify, ERROR_HEADER } from './rescue.js';
export { Registry, Counter, Gauge, Histogram, CONTENT_TYPE } from './metrics/registry.js';
export type { RegistrySnapshot, MetricSnapshot, SeriesSnapshot } from './metrics/registry.js';
export { ProxyMetrics, DURATION_BUCKETS } from './metrics/proxy.js';
export type { Direction, Protocol } from './metrics/proxy.js';
export { createLogger } from './log.js';
export { sniff } from './tcp/detect.js';
