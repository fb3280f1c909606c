// Bytes the telemetry layer allocates per request with tracing on (no access log), by allocation
// site: a sampling heap profile that keeps objects the GC already collected, over N requests
// through the real layer and the real Tracing with the sampler given (default 0.01, the bench's).
//   node bench/ab/trace-alloc.mjs [tree=.] [ratio=0.01] [n=200000]
// Needs `npm run build` in the tree. The context is a plain object with the fields the layer
// reads (no sockets: this measures the layer's own JavaScript).
import { Session } from 'node:inspector/promises';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const tree = resolve(process.argv[2] ?? '.');
const ratio = Number(process.argv[3] ?? 0.01);
const n = Number(process.argv[4] ?? 200_000);
const { Tracing } = await import(pathToFileURL(`${tree}/proxy/dist/telemetry/tracing.js`).href);
const { telemetryLayer } = await import(pathToFileURL(`${tree}/proxy/dist/telemetry/layer.js`).href);

const tracing = new Tracing(
  {
    url: 'http://127.0.0.1:9/v1/traces',
    headers: {},
    serviceName: 'alloc',
    resourceAttributes: {},
    sampler: { ratio, parentBased: true },
    maxQueueSize: 2048,
    maxExportBatchSize: 512,
    scheduleDelayMs: 60_000,
    exportTimeoutMs: 1000,
  },
  { pod: 'p', namespace: 'ns', workload: 'w', serviceAccount: 'sa', identity: 'spiffe://td/ns/ns/sa/sa' },
);
const layer = telemetryLayer('inbound', { tracing, accessLog: undefined });
const handler = layer((ctx) => ctx.finishNow());
const raw = ['Host', 'backend.ns.svc:8080', 'User-Agent', 'hey/0.0.1', 'Accept', '*/*'];
function request() {
  const listeners = [];
  const ctx = {
    method: 'GET',
    path: '/api/items?x=1',
    rawHeaders: raw,
    upstreamHeaders: raw.slice(),
    httpVersion: '1.1',
    destination: { host: '10.0.0.1', port: 8080 },
    peerAddress: '127.0.0.1',
    peerPort: 40000,
    peerIdentity: undefined,
    upstreamIdentity: undefined,
    status: 200,
    errorCode: undefined,
    response: undefined,
    retries: 0,
    onDone: (fn) => listeners.push(fn),
    finishNow: () => {
      for (const fn of listeners) fn(ctx);
    },
  };
  handler(ctx);
}
// The context itself, measured alone and subtracted.
function baseline() {
  const listeners = [];
  const ctx = {
    method: 'GET',
    rawHeaders: raw,
    upstreamHeaders: raw.slice(),
    onDone: (fn) => listeners.push(fn),
  };
  ctx.onDone(() => {});
  for (const fn of listeners) fn(ctx);
}

async function profile(fn) {
  const s = new Session();
  s.connect();
  await s.post('HeapProfiler.startSampling', {
    samplingInterval: 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  for (let i = 0; i < n; i++) fn();
  const { profile: p } = await s.post('HeapProfiler.stopSampling');
  s.disconnect();
  const sites = new Map();
  let total = 0;
  (function walk(node, stack) {
    const f = node.callFrame;
    const name = `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    const self = node.selfSize;
    if (self > 0) {
      total += self;
      sites.set(name, (sites.get(name) ?? 0) + self);
    }
    for (const c of node.children) walk(c, stack);
  })(p.head, []);
  return { total, sites };
}
for (let i = 0; i < 20_000; i++) request(); // warm up (JIT)
const base = await profile(baseline);
const got = await profile(request);
console.log(`tree=${tree} ratio=${ratio} n=${n}`);
console.log(
  `bytes/request: layer ${((got.total - base.total) / n).toFixed(0)} (context ${(base.total / n).toFixed(0)} subtracted)`,
);
for (const [k, v] of [...got.sites].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(`  ${(v / n).toFixed(0).padStart(6)}  ${k}`);
await tracing.shutdown().catch(() => {});
process.exit(0);
