export {
  AGENT,
  Harness,
  PREFIX,
  REPO_ROOT,
  SUBNET4,
  SUBNET6,
  listHarnessNamespaces,
  sweepLeftovers,
} from './harness.js';
export type { ExecResult, Identity, Pod, Proc, SpawnOptions } from './harness.js';
export {
  eventually,
  httpJson,
  httpRequest,
  natTable,
  parsePrometheus,
  readMetrics,
  sumMetric,
  tcpExchange,
  waitForPort,
} from './traffic.js';
export type { ClientResult, Sample } from './traffic.js';
