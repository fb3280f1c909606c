// The app in the policy end-to-end test (plain JavaScript: runs under any UID without a build).
//
//   node policy-app.mjs CONTROL_SOCKET NAME HTTP_PORTS TCP_PORTS     (ports comma-separated)
//
// HTTP on every HTTP port: JSON {server: "NAME:PORT", url, identity} (identity = the verified
// caller its sidecar put in x-remora-peer-identity), except
//   .../flaky/<key>     the first request for a key answers 503, every later one 200
//   .../reset-once/<key> the first request for a key has its connection reset, later ones 200
//   any path            500 while the port is failing (control /fail)
// TCP on every TCP port: records what arrived, echoes it back.
// Control, over a unix socket (reachable from the test without entering the namespace, and
// never through the proxy): GET /log (every request and TCP connection that arrived, with
// Date.now() of arrival), POST /fail?port=P, POST /heal?port=P.
// Prints `listening` once everything is bound.
import http from 'node:http';
import net from 'node:net';
import { URL } from 'node:url';

const [controlPath, name, httpPorts = '', tcpPorts = ''] = process.argv.slice(2);
const ports = (s) => s.split(',').filter(Boolean).map(Number);

const log = [];
const failing = new Set();
const seen = new Set();

function first(key) {
  if (seen.has(key)) return false;
  seen.add(key);
  return true;
}

function appServer(port) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const identity = req.headers['x-remora-peer-identity'] ?? null;
      log.push({ kind: 'http', port, url: req.url, identity, t: Date.now() });
      const reply = (status) =>
        res
          .writeHead(status, { 'content-type': 'application/json' })
          .end(JSON.stringify({ server: `${name}:${port}`, url: req.url, identity, status }));
      if (failing.has(port)) return reply(500);
      if (req.url.includes('/flaky/') && first(req.url)) return reply(503);
      if (req.url.includes('/reset-once/') && first(req.url)) return req.socket.resetAndDestroy();
      reply(200);
    });
  });
  server.keepAliveTimeout = 30_000;
  return server;
}

function tcpServer(port) {
  return net.createServer((s) => {
    const entry = { kind: 'tcp', port, data: '', t: Date.now() };
    log.push(entry);
    s.setEncoding('utf8');
    s.on('data', (d) => {
      entry.data += d;
      s.write(d);
    });
    s.on('end', () => s.end());
    s.on('error', () => s.destroy());
  });
}

const control = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://control');
  const port = Number(url.searchParams.get('port'));
  if (url.pathname === '/fail') failing.add(port);
  else if (url.pathname === '/heal') failing.delete(port);
  else if (url.pathname !== '/log') return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(log));
});

const servers = [
  ...ports(httpPorts).map((p) => [appServer(p), p]),
  ...ports(tcpPorts).map((p) => [tcpServer(p), p]),
];
let pending = servers.length + 1;
const bound = () => {
  if (--pending === 0) process.stdout.write('listening\n');
};
for (const [server, port] of servers) server.listen(port, '::', bound);
control.listen(controlPath, bound);
process.on('SIGTERM', () => process.exit(0));
