// The harness's in-namespace helper: small servers and one-shot clients, run with
// `ip netns exec NS [setpriv ...] node agent.mjs <command> ...`. Plain JavaScript so it runs
// without a build step under any UID. Servers print one line `listening <port>` when bound.
//
//   http-server PORT [HOST]        answers every request with JSON {server, method, url, remote}
//   echo-server PORT [HOST]        echoes every byte back
//   probe PORT [HOST]              counts connections; `GET /count` over the same port reads it
//   http URL [METHOD]              one request, no keep-alive; prints {status, body} or {error}
//   tcp HOST PORT PAYLOAD          writes PAYLOAD, half-closes, prints {data} or {error}
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
  case 'http': {
    const [url, method = 'GET'] = args;
    const req = http.request(url, { method, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => print({ status: res.statusCode, body }));
    });
    req.setTimeout(8000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => print({ error: err.code ?? err.message }, 1));
    req.end();
    break;
  }
  case 'tcp': {
    const [host, port, payload = ''] = args;
    let data = '';
    const s = net.connect(Number(port), host, () => s.end(payload));
    s.setTimeout(8000, () => s.destroy(new Error('timeout')));
    s.setEncoding('utf8');
    s.on('data', (c) => (data += c));
    s.on('error', (err) => print({ error: err.code ?? err.message }, 1));
    s.on('close', (hadError) => {
      if (!hadError) print({ data });
    });
    break;
  }
  default:
    process.stderr.write(`agent: unknown command ${command}\n`);
    process.exitCode = 2;
}
