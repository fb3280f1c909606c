// Paced HTTP load for the supervisor chaos tests, run inside a harness pod:
//   node supervisor-load.mjs URL RATE SECONDS      (SIGTERM ends it early)
// Half the workers reuse keep-alive connections, half open a new connection per request.
// Prints one JSON line: totals by outcome and successful requests per second.
/* global setTimeout */
import http from 'node:http';

const [url, rateArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const workers = 32;
const stats = {
  ok: 0,
  badStatus: 0,
  refused: 0,
  reset: 0,
  other: 0,
  errors: {},
  okPerSecond: [],
  failPerSecond: [],
};
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: workers });
const start = Date.now();
const end = start + seconds * 1000;
let slot = 0;

function once(agent) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : 'badStatus'));
      res.on('error', () => resolve('reset'));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err) => {
      const code = err.code ?? err.message;
      stats.errors[code] = (stats.errors[code] ?? 0) + 1;
      resolve(
        code === 'ECONNREFUSED' ? 'refused' : code === 'ECONNRESET' || code === 'EPIPE' ? 'reset' : 'other',
      );
    });
  });
}

async function worker(i) {
  const agent = i % 2 === 0 ? keepAlive : false;
  for (;;) {
    const at = start + (slot++ * 1000) / rate;
    // Wall-clock bound: slots missed while connections waited are not made up afterwards.
    if (stopped || at >= end || Date.now() >= end) return;
    const wait = at - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const outcome = await once(agent);
    stats[outcome] += 1;
    const sec = Math.floor((Date.now() - start) / 1000);
    const per = outcome === 'ok' ? stats.okPerSecond : stats.failPerSecond;
    per[sec] = (per[sec] ?? 0) + 1;
  }
}

// SIGTERM ends the run early (the caller decides how long): finish what is in flight, report.
let stopped = false;
process.on('SIGTERM', () => (stopped = true));
await Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
keepAlive.destroy();
for (const k of ['okPerSecond', 'failPerSecond']) stats[k] = Array.from(stats[k], (v) => v ?? 0);
process.stdout.write(`${JSON.stringify(stats)}\n`);
