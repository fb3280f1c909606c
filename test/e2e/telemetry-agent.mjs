// In-pod helpers for the telemetry end-to-end tests, plain JavaScript so they run without a build
// under any UID (like harness/agent.mjs). Servers print `listening <port>` once bound.
//
//   otlp-sink PORT               accepts POST /v1/traces; prints each body as {"otlp": base64}
//   trace-app PORT               answers every request with JSON {traceparent, tracestate, b3}
//                                as received (what the app saw from its sidecar)
//   trace-client URL TRACEPARENT one GET carrying that traceparent; prints {status, body}
import { Buffer } from 'node:buffer';
import http from 'node:http';

const [command, ...args] = process.argv.slice(2);

function listen(server, port) {
  server.listen(Number(port), '::', () => process.stdout.write(`listening ${server.address().port}\n`));
  process.on('SIGTERM', () => {
    server.close();
    process.exit(0);
  });
}

switch (command) {
  case 'otlp-sink': {
    listen(
      http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          if (req.method === 'POST' && req.url === '/v1/traces') {
            process.stdout.write(`${JSON.stringify({ otlp: Buffer.concat(chunks).toString('base64') })}\n`);
            res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
          } else res.writeHead(404).end();
        });
      }),
      args[0],
    );
    break;
  }
  case 'trace-app': {
    listen(
      http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          const h = req.headers;
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ traceparent: h.traceparent, tracestate: h.tracestate, b3: h.b3 }));
        });
      }),
      args[0],
    );
    break;
  }
  case 'trace-client': {
    const [url, traceparent] = args;
    http
      .get(url, { headers: { traceparent }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => process.stdout.write(`${JSON.stringify({ status: res.statusCode, body })}\n`));
      })
      .on('error', (err) => {
        process.stdout.write(`${JSON.stringify({ error: err.code ?? err.message })}\n`);
        process.exitCode = 1;
      });
    break;
  }
  default:
    process.stderr.write(`unknown command ${command}\n`);
    process.exit(2);
}
