// The client app in the policy end-to-end test (plain JavaScript: runs under any UID without a
// build). It runs inside a pod as the app's UID, so its connections are captured by the pod's
// sidecar like any app's, and takes commands from the test over a unix socket (reachable from
// the test's namespace, never through a proxy): POST / with one JSON command, JSON answer.
//
//   node policy-client.mjs CONTROL_SOCKET
//
//   {op: 'http', url, method?}                 one request on a new connection:
//                                              {status, headers, body} or {error}
//   {op: 'tcp', host, port, payload}           writes payload, keeps the connection open until
//                                              the echo came back or the peer closed:
//                                              {data, closed: 'peer' | 'echoed', error?}
//   {op: 'load', url, rate, seconds}           open-loop paced GETs (keep-alive): per status
//                                              counts, x-remora-error codes, Retry-After values,
//                                              the time of the first and last send
//   {op: 'ka-start', id, url, intervalMs}      one keep-alive connection (maxSockets 1), a GET
//                                              every intervalMs until ka-stop; answers after the
//                                              first response
//   {op: 'ka-peek' | 'ka-stop', id}            what the loop saw so far: statuses, sockets used,
//                                              socket closes, errors
// Prints `listening` once the control socket is bound.
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';

const [controlPath] = process.argv.slice(2);

function request(url, { method = 'GET', agent = false, timeoutMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body, socket: req.socket }),
      );
      res.on('error', (err) => resolve({ error: err.code ?? err.message }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

function tcp({ host, port, payload }) {
  return new Promise((resolve) => {
    let data = '';
    let error;
    let echoed = false;
    const s = net.connect(Number(port), host, () => s.write(payload));
    s.setTimeout(8000, () => s.destroy(new Error('timeout')));
    s.setEncoding('utf8');
    s.on('data', (c) => {
      data += c;
      if (data === payload) {
        echoed = true;
        s.end();
      }
    });
    s.on('error', (err) => (error = err.code ?? err.message));
    s.on('close', () => resolve({ data, closed: echoed ? 'echoed' : 'peer', ...(error ? { error } : {}) }));
  });
}

async function load({ url, rate, seconds }) {
  // Enough connections for the rate with room for slow answers; each new one costs the
  // sidecars a protocol detection, so not more.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const total = Math.round(rate * seconds);
  const statuses = {};
  const codes = {};
  const retryAfter = new Set();
  const errors = {};
  const inflight = [];
  let sent = 0;
  const start = performance.now();
  let lastSend = start;
  const one = async () => {
    // A loaded machine may hold requests back for a while: late is fine here, lost is not.
    const r = await request(url, { agent, timeoutMs: 30_000 });
    if (r.error) {
      errors[r.error] = (errors[r.error] ?? 0) + 1;
      return;
    }
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const code = r.headers['x-remora-error'];
    if (code) codes[code] = (codes[code] ?? 0) + 1;
    if (r.headers['retry-after'] !== undefined) retryAfter.add(r.headers['retry-after']);
  };
  await new Promise((done) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) / 1000) * rate) + 1);
      while (sent < due) {
        sent++;
        lastSend = performance.now();
        inflight.push(one());
      }
      if (sent < total) setTimeout(tick, 1);
      else done();
    };
    tick();
  });
  await Promise.all(inflight);
  agent.destroy();
  return {
    sent,
    statuses,
    codes,
    retryAfter: [...retryAfter],
    errors,
    sendSpanMs: lastSend - start,
  };
}

const loops = new Map();

function kaStart({ id, url, intervalMs }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const st = { statuses: [], codes: [], sockets: new Set(), closes: 0, errors: [], stop: false };
  loops.set(id, st);
  let firstDone;
  const first = new Promise((r) => (firstDone = r));
  void (async () => {
    while (!st.stop) {
      const r = await request(url, { agent });
      if (r.error) st.errors.push(r.error);
      else {
        st.statuses.push(r.status);
        st.codes.push(r.headers['x-remora-error'] ?? null);
        if (!st.sockets.has(r.socket)) {
          st.sockets.add(r.socket);
          r.socket.once('close', () => st.closes++);
        }
      }
      firstDone();
      await new Promise((r2) => setTimeout(r2, intervalMs));
    }
    agent.destroy();
  })();
  return first.then(() => summary(st));
}

function summary(st) {
  return {
    statuses: st.statuses,
    codes: st.codes,
    sockets: st.sockets.size,
    closes: st.closes,
    errors: st.errors,
  };
}

async function run(cmd) {
  switch (cmd.op) {
    case 'http': {
      const r = await request(cmd.url, { method: cmd.method });
      delete r.socket;
      return r;
    }
    case 'tcp':
      return tcp(cmd);
    case 'load':
      return load(cmd);
    case 'ka-start':
      return kaStart(cmd);
    case 'ka-peek':
    case 'ka-stop': {
      const st = loops.get(cmd.id);
      if (!st) return { error: `no loop ${cmd.id}` };
      // Read before stopping: the loop's own agent.destroy() must not count as a close.
      const s = summary(st);
      if (cmd.op === 'ka-stop') st.stop = true;
      return s;
    }
    default:
      return { error: `unknown op ${cmd.op}` };
  }
}

const control = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    void run(JSON.parse(body)).then((answer) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
    );
  });
});
control.listen(controlPath, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
