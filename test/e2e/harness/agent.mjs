// The harness's in-namespace helper: small servers and one-shot clients, run with
// `ip netns exec NS [setpriv ...] node agent.mjs <command> ...`. Plain JavaScript so it runs
// without a build step under any UID. Servers print one line `listening <port>` when bound.
//
//   http-server PORT [HOST]        answers every request with JSON {server, method, url, remote}
//   echo-server PORT [HOST]        echoes every byte back
//   probe PORT [HOST]              counts connections; `GET /count` over the same port reads it
//   http URL [METHOD]              one request, no keep-alive; prints {status, body} or {error}
//   tcp HOST PORT PAYLOAD          writes PAYLOAD, half-closes, prints {data} or {error}
//   client                         the two above as JSON lines on stdin ({id, op, ...}) → stdout
import http from 'node:http';
import net from 'node:net';

const [command, ...args] = process.argv.slice(2);
const name = process.env.AGENT_NAME ?? 'agent';

function listening(server, port, host) {
  server.listen(Number(port), host ?? '::', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  process.on('SIGTERM', () => {
    server.close();
    process.exit(0);
  });
}

/** One request, no keep-alive; resolves {status, body} or {error}. */
function httpOnce(url, method = 'GET') {
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (err) => resolve({ error: err.code ?? err.message }));
    });
    req.setTimeout(8000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

/** Writes payload, half-closes, reads until the peer closes; resolves {data} or {error}. */
function tcpOnce(host, port, payload = '') {
  return new Promise((resolve) => {
    let data = '';
    let failed = false;
    const s = net.connect(Number(port), host, () => s.end(payload));
    s.setTimeout(8000, () => s.destroy(new Error('timeout')));
    s.setEncoding('utf8');
    s.on('data', (c) => (data += c));
    s.on('error', (err) => {
      failed = true;
      resolve({ error: err.code ?? err.message });
    });
    s.on('close', () => {
      if (!failed) resolve({ data });
    });
  });
}

function print(obj, code = 0) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
  process.exitCode = code;
}

switch (command) {
  case 'http-server': {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({
          server: name,
          method: req.method,
          url: req.url,
          remote: req.socket.remoteAddress?.replace(/^::ffff:/, ''),
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      });
    });
    listening(server, args[0], args[1]);
    break;
  }
  case 'echo-server': {
    const server = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    listening(server, args[0], args[1]);
    break;
  }
  case 'probe': {
    // Stands in for the proxy before it forwards: counts what the capture rules send here.
    let count = 0;
    const server = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.once('data', (d) => {
        if (d.toString().startsWith('GET /count')) {
          s.end(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${count}`);
        } else {
          count++;
          s.end(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${JSON.stringify({ server: `probe-${name}` })}`);
        }
      });
    });
    listening(server, args[0], args[1]);
    break;
  }
  case 'http':
    void httpOnce(args[0], args[1]).then((r) => print(r, r.error ? 1 : 0));
    break;
  case 'tcp':
    void tcpOnce(args[0], args[1], args[2]).then((r) => print(r, r.error ? 1 : 0));
    break;
  case 'client': {
    // Long-lived client: one JSON command per stdin line, one JSON answer (same id) per line.
    // Saves starting a node process per request; its sockets belong to its UID/GID like any.
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const cmd = JSON.parse(line);
        const run =
          cmd.op === 'http' ? httpOnce(cmd.url, cmd.method) : tcpOnce(cmd.host, cmd.port, cmd.payload);
        void run.then((r) => process.stdout.write(`${JSON.stringify({ id: cmd.id, ...r })}\n`));
      }
    });
    process.stdin.on('end', () => process.exit(0));
    process.stdout.write('listening stdin\n');
    break;
  }
  default:
    process.stderr.write(`agent: unknown command ${command}\n`);
    process.exitCode = 2;
}
