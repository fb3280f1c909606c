import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { rawExchange, sample, scrape, startBackend, startEngine, until } from '../harness.js';
import type { Backend, TestEngine } from '../harness.js';

let backend: Backend;
let px: TestEngine;
let agent: http.Agent;

beforeAll(async () => {
  backend = await startBackend();
  px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backend.port}` });
  agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
});
afterAll(async () => {
  agent.destroy();
  await px.engine.close();
  await backend.close();
});

function request(
  opts: http.RequestOptions & { body?: (req: http.ClientRequest) => void },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; chunks: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: px.port('inbound'), agent, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          chunks: chunks.length,
        }),
      );
    });
    req.on('error', reject);
    if (opts.body) opts.body(req);
    else req.end();
  });
}

describe('HTTP/1.1 forwarding through the inbound listener', () => {
  it('forwards a GET and answers with the upstream response', async () => {
    const r = await request({ path: '/hello?x=1', headers: { 'x-custom': 'a' } });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello world\n');
    const got = backend.received.at(-1);
    expect(got?.url).toBe('/hello?x=1');
    expect(got?.headers['x-custom']).toBe('a');
    expect(got?.headers.host).toBe(`127.0.0.1:${px.port('inbound')}`);
  });

  it('streams a large POST body upstream and the echo back, without buffering it whole', async () => {
    const size = 8 * 1024 * 1024;
    const r = await request({
      method: 'POST',
      path: '/echo',
      headers: { 'content-length': String(size) },
      body: (req) => {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      },
    });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(size);
    // Streamed: the response arrived in many pieces, not one buffered blob.
    expect(r.chunks).toBeGreaterThan(1);
    expect(backend.received.at(-1)?.bodyBytes).toBe(size);
  });

  it('forwards a chunked request body and relays a chunked response as it comes', async () => {
    const r = await request({
      method: 'POST',
      path: '/echo',
      body: (req) => {
        req.write('part1-');
        setTimeout(() => req.end('part2'), 30);
      },
    });
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.body.toString()).toBe('part1-part2');
    const drip = await request({ path: '/drip' });
    expect(drip.body.toString()).toBe('chunk0\nchunk1\nchunk2\n');
    expect(drip.chunks).toBeGreaterThanOrEqual(2);
  });

  it('answers Expect: 100-continue and then forwards the body', async () => {
    const r = await new Promise<{ continued: boolean; body: string }>((resolve, reject) => {
      let continued = false;
      const req = http.request({
        host: '127.0.0.1',
        port: px.port('inbound'),
        agent,
        method: 'PUT',
        path: '/echo',
        headers: { expect: '100-continue', 'content-length': '4' },
      });
      req.on('continue', () => {
        continued = true;
        req.end('data');
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ continued, body }));
      });
      req.on('error', reject);
    });
    expect(r.continued).toBe(true);
    expect(r.body).toBe('data');
    expect(backend.received.at(-1)?.headers.expect).toBeUndefined();
  });

  it('removes hop-by-hop headers both ways (RFC 9110 §7.6.1)', async () => {
    const r = await request({
      method: 'POST',
      path: '/echo',
      headers: {
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': '1',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        trailer: 'x-t',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'proxy-connection': 'keep-alive',
        'x-keep': 'yes',
      },
      body: (req) => req.end('b'),
    });
    const h = backend.received.at(-1)?.headers ?? {};
    for (const name of [
      'x-drop-me',
      'keep-alive',
      'te',
      'trailer',
      'proxy-authorization',
      'proxy-connection',
    ]) {
      expect(h[name], name).toBeUndefined();
    }
    expect(h['x-keep']).toBe('yes');
    // The upstream's Connection named x-hop: it must not reach the client, nor its Keep-Alive.
    expect(r.headers['x-hop']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=9');
  });

  it('reuses upstream connections across requests (keep-alive pool)', async () => {
    const before = backend.acceptedSockets();
    for (let i = 0; i < 20; i++) await request({ path: `/n${i}` });
    // Sequential requests need one pooled connection at most, never one per request.
    expect(backend.acceptedSockets() - before).toBeLessThanOrEqual(1);
  });

  it('tunnels a WebSocket upgrade and echoes raw bytes after the 101', async () => {
    const s = net.connect(px.port('inbound'), '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.write(
      'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await until(() => Buffer.concat(got).toString().includes('\r\n\r\n'), '101 response');
    const head = Buffer.concat(got).toString();
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head.toLowerCase()).toContain('x-backend: yes');
    got.length = 0;
    s.write('ping-frame-bytes');
    await until(() => Buffer.concat(got).toString() === 'ping-frame-bytes', 'echo through the tunnel');
    expect(backend.received.at(-1)?.headers.upgrade).toBe('websocket');
    s.destroy();
  });

  it('counts requests by status in metrics', async () => {
    const text = await scrape(px.port('metrics'));
    expect(
      sample(text, 'remora_requests_total', { direction: 'inbound', protocol: 'http1', status_code: '200' }),
    ).toBeGreaterThan(20);
    expect(
      sample(text, 'remora_tcp_connections_opened_total', { direction: 'inbound', protocol: 'http1' }),
    ).toBeGreaterThan(0);
    expect(
      sample(text, 'remora_request_duration_seconds_count', { direction: 'inbound', protocol: 'http1' }),
    ).toBeGreaterThan(20);
  });

  it('keeps a raw keep-alive connection open across two requests', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(out.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
  });
});
