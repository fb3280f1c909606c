#!/usr/bin/env node
/**
 * The demo's application: a tiny HTTP API that knows nothing about Remora. It answers a few
 * routes, one of them with an error on purpose, so the proxy's metrics show a mix of statuses.
 * Usage: node app.js <host> <port>
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PEER_IDENTITY_HEADER } from '@remora/proxy/contract';

const [host, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) {
  process.stderr.write('usage: app <host> <port>\n');
  process.exit(2);
}

const MAX_BODY = 64 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://app');
  const item = /^\/items\/(\d+)$/.exec(url.pathname);
  if (req.method === 'GET' && url.pathname === '/') return send(res, 200, { app: 'remora demo', ok: true });
  // Echoes the W3C trace context it was called with (which span the proxy made its parent) and,
  // behind a meshed sidecar, the caller's verified identity the proxy hands to the app.
  if (req.method === 'GET' && url.pathname === '/trace') {
    return send(res, 200, {
      traceparent: req.headers.traceparent ?? null,
      ...(req.headers[PEER_IDENTITY_HEADER] === undefined
        ? {}
        : { peerIdentity: req.headers[PEER_IDENTITY_HEADER] }),
    });
  }
  if (req.method === 'GET' && item?.[1] !== undefined)
    return send(res, 200, { id: Number(item[1]), name: `item ${item[1]}` });
  if (req.method === 'POST' && url.pathname === '/orders') {
    const raw = await readBody(req);
    let order: unknown;
    try {
      order = JSON.parse(raw);
    } catch {
      return send(res, 400, { error: 'body is not JSON' });
    }
    return send(res, 201, { created: order, bytes: Buffer.byteLength(raw) });
  }
  if (url.pathname === '/fail') return send(res, 500, { error: 'simulated failure' });
  return send(res, 404, { error: `no route ${req.method ?? ''} ${url.pathname}` });
}

const server = createServer((req, res) => {
  handle(req, res).catch((err: Error) => {
    if (!res.headersSent) send(res, 500, { error: err.message });
    else res.destroy();
  });
});
server.listen(port, host, () => process.stdout.write(`demo app listening on ${host}:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
