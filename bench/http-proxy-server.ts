#!/usr/bin/env node
/**
 * The "http-proxy" path of the benchmark: the popular Node reverse proxy (the `http-proxy`
 * package) with a keep-alive agent, in its own process like the other proxies.
 * Usage: node http-proxy-server.js <listen port> <target host:port>
 */
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';

const [portArg, target] = process.argv.slice(2);
const port = Number(portArg);
if (
  !Number.isInteger(port) ||
  port < 1 ||
  port > 65_535 ||
  target === undefined ||
  !/^[\w.-]+:\d+$/.test(target)
) {
  process.stderr.write('usage: http-proxy-server <listen port> <target host:port>\n');
  process.exit(2);
}

// Without an agent http-proxy sends `Connection: close` upstream; keep-alive is the fair setup.
const agent = new Agent({ keepAlive: true });
const proxy = httpProxy.createProxyServer({ target: `http://${target}`, agent });
proxy.on('error', (err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
  res.end(`http-proxy: ${err.message}\n`);
});

const server = createServer((req, res) => proxy.web(req, res));
server.listen(port, '127.0.0.1', () => process.stdout.write(`http-proxy listening on 127.0.0.1:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
