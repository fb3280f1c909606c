// The servers of bench/ab/cpu-per-request-telemetry.sh: the keep-alive backend of backend.mjs on
// 127.0.0.1:$1 (default 18090) and the real OTLP/HTTP receiver of demo/otlp.ts (built: `npx tsc -p
// demo`) on 127.0.0.1:$2 (default 18091), decoding every export and printing the span count each 10 s.
import http from 'node:http';
import { setInterval } from 'node:timers';
import { pathToFileURL } from 'node:url';
const backendPort = Number(process.argv[2] ?? 18090);
const otlpPort = Number(process.argv[3] ?? 18091);
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok\n'));
});
s.keepAliveTimeout = 60000;
s.listen(backendPort, '127.0.0.1');
const { startOtlpReceiver } = await import(
  pathToFileURL(`${import.meta.dirname}/../../demo/dist/otlp.js`).href
);
const r = await startOtlpReceiver({ port: otlpPort });
console.log(`backend 127.0.0.1:${backendPort} otlp ${r.url}`);
setInterval(() => console.log(`spans=${r.spans.length} rejected=${r.rejected}`), 10_000).unref();
