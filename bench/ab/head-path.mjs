// The response head path of one hop, codec client → codec server stage, as a microbench
// (docs/performance.md "Head bytes: measured, not taken"): parse a head, then
//   strings      main's path: a Buffer view per name and value (http1/connection.ts `headed`,
//                the dispatch contract), filterResponseHeaders (a string per name and value),
//                the head string of h1server's writeHead, written into the response Buffer;
//   bytes+views  the byte copy with the contract's views still made: encodeResponseHead's runs
//                of kept lines into one Buffer, copied into the response Buffer;
//   bytes        the byte copy alone (what dropping the views from the contract would add).
// ns per head (CPU time, best of 5 rounds, the variants alternating) and heap bytes per head
// (a run without a GC).
//   npm run build && node --expose-gc bench/ab/head-path.mjs [tree, default: this one]
import { Buffer } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const tree = pathToFileURL(resolve(process.argv[2] ?? '.')).href;
const { ResponseReader, R_NEED_MORE, encodeResponseHead, BODY_LENGTH } = await import(
  `${tree}/proxy/dist/http1/index.js`
);
const { filterResponseHeaders } = await import(`${tree}/proxy/dist/http/headers.js`);

const HEADS = {
  // what bench/ab/backend.mjs answers (node:http, `res.end('ok\n')`)
  'backend.mjs, 4 fields (2 end-to-end)':
    'HTTP/1.1 200 OK\r\nDate: Fri, 04 Dec 2026 23:04:12 GMT\r\nConnection: keep-alive\r\n' +
    'Keep-Alive: timeout=60\r\nContent-Length: 3\r\n\r\nok\n',
  // a typical API answer through node:http (the backend of the second A/B table)
  'API answer, 10 fields (7 end-to-end)':
    'HTTP/1.1 200 OK\r\nServer: nginx/1.26.2\r\nContent-Type: application/json; charset=utf-8\r\n' +
    'Cache-Control: no-store\r\nETag: "6751f0a2-1b"\r\nVary: Accept-Encoding\r\n' +
    'X-Request-Id: 0af7651916cd43dd8448eb211c80319c\r\nDate: Fri, 04 Dec 2026 22:59:26 GMT\r\n' +
    'Connection: keep-alive\r\nKeep-Alive: timeout=60\r\nContent-Length: 26\r\n\r\n{"id":42,"items":[1,2,3]}\n',
};
const reader = new ResponseReader({ maxHeadBytes: 16 * 1024, maxFields: 100 });
const KEEP_ALIVE = 'connection: keep-alive\r\nkeep-alive: timeout=5\r\n';
const DATE = 'Fri, 04 Dec 2026 23:04:13 GMT';
let sink = 0;

function views(h) {
  const raw = new Array(h.count * 2);
  for (let i = 0; i < h.count; i++) {
    const k = i * 4;
    raw[i * 2] = h.buf.subarray(h.ranges[k], h.ranges[k + 1]);
    raw[i * 2 + 1] = h.buf.subarray(h.ranges[k + 2], h.ranges[k + 3]);
  }
  return raw;
}

function strings(b) {
  reader.expect('GET', false);
  reader.next(b, 0);
  const h = reader.head;
  const raw = views(h);
  const reason = h.reasonPhrase();
  const body = b.subarray(reader.pos);
  const fields = [];
  filterResponseHeaders(raw, fields);
  // h1server.ts writeHead, as on main
  let s = `HTTP/1.1 ${h.status} ${reason === '' ? (STATUS_CODES[h.status] ?? '') : reason}\r\n`;
  let date = false;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i];
    const n = name.length;
    if (n === 10 && name.toLowerCase() === 'connection') continue;
    if (n === 17 && name.toLowerCase() === 'transfer-encoding') continue;
    if (n === 14) name.toLowerCase();
    else if (n === 4 && name.toLowerCase() === 'date') date = true;
    s += `${name}: ${fields[i + 1]}\r\n`;
  }
  if (!date) s += `date: ${DATE}\r\n`;
  s += KEEP_ALIVE;
  s += '\r\n';
  const out = Buffer.allocUnsafe(s.length + body.length);
  out.write(s, 0, 'latin1');
  body.copy(out, s.length);
  sink += out.length;
  while (reader.next(b, reader.pos) !== R_NEED_MORE);
}

const opts = {
  framing: BODY_LENGTH,
  length: 0,
  extra: ['connection', 'keep-alive', 'keep-alive', 'timeout=5'],
};
function bytes(b, withViews) {
  reader.expect('GET', false);
  reader.next(b, 0);
  const h = reader.head;
  if (withViews) sink += views(h).length;
  const body = b.subarray(reader.pos);
  opts.length = h.contentLength;
  const head = encodeResponseHead(h, opts);
  const out = Buffer.allocUnsafe(head.length + body.length);
  head.copy(out, 0);
  body.copy(out, head.length);
  sink += out.length;
  while (reader.next(b, reader.pos) !== R_NEED_MORE);
}

/** CPU ns per head of each variant, the variants alternating round by round (best of 5). */
function cpuNs(fns, n) {
  for (const fn of fns) for (let i = 0; i < 20_000; i++) fn(); // optimized code, not the interpreter
  const best = fns.map(() => Infinity);
  for (let round = 0; round < 5; round++) {
    fns.forEach((fn, v) => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) fn();
      const c = process.cpuUsage(c0);
      best[v] = Math.min(best[v], ((c.user + c.system) * 1e3) / n);
    });
  }
  return best;
}

/** Heap bytes per head: heapUsed growth over 2,000 heads after a full GC, if no GC ran meanwhile. */
function heapBytes(fn) {
  if (typeof globalThis.gc !== 'function') return 'n/a (run with --expose-gc)';
  let gcs = 0;
  const obs = new PerformanceObserver((l) => (gcs += l.getEntries().length));
  obs.observe({ entryTypes: ['gc'] });
  globalThis.gc();
  const h0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < 2_000; i++) fn();
  const h1 = process.memoryUsage().heapUsed;
  obs.disconnect();
  return gcs <= 1 ? `${Math.round((h1 - h0) / 2_000)} B` : 'n/a (a GC ran)';
}

for (const [name, text] of Object.entries(HEADS)) {
  const b = Buffer.from(text, 'latin1');
  const variants = {
    strings: () => strings(b),
    'bytes+views': () => bytes(b, true),
    bytes: () => bytes(b, false),
  };
  const ns = cpuNs(Object.values(variants), 200_000);
  Object.entries(variants).forEach(([v, fn], i) =>
    console.log(`${name}: ${v} ${Math.round(ns[i])} ns, ${heapBytes(fn)}`),
  );
}
if (sink === 0) throw new Error('nothing measured');
