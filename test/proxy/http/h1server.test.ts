/**
 * The HTTP/1.1 server stage on the project's codec (proxy/src/http/h1server.ts), raw sockets in
 * and bytes out through a real engine: what node:http did for us and the stage now does itself
 * (pipelining one at a time, 100-continue, HEAD, HTTP/1.0 close-delimited bodies, keep-alive,
 * request bodies with backpressure), and bad input arriving behind good input.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { rawExchange, startBackend, startEngine, until } from '../harness.js';
import type { Backend, TestEngine } from '../harness.js';

/** Opens a connection and collects what comes back; `waitFor` resolves once `text` matches. */
function client(port: number) {
  const s = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  s.on('data', (c: Buffer) => (text += c.toString('latin1')));
  s.on('close', () => (closed = true));
  s.on('error', () => undefined);
  return {
    s,
    text: () => text,
    closed: () => closed,
    waitFor: (re: RegExp, what: string) => until(() => re.test(text), what),
  };
}

/** The payload of a chunked body (strict enough for a test: sizes, data, CRLF, last chunk). */
function dechunk(body: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', i);
    const n = parseInt(body.slice(i, eol), 16);
    if (n === 0) return out;
    out += body.slice(eol + 2, eol + 2 + n);
    i = eol + 2 + n + 2;
  }
}

/** How many responses a byte stream holds (status lines at the start or after a body). */
function statuses(text: string): string[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1] as string);
}

describe('the codec server stage', () => {
  let backend: Backend;
  let px: TestEngine;
  beforeAll(async () => {
    backend = await startBackend();
    px = await startEngine({
      [ENV.logLevel]: 'silent',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
    });
  });
  afterAll(async () => {
    await px.engine.close();
    await backend.close();
  });

  it('pipelined requests in one write are answered one at a time, in order, on the one connection', async () => {
    const c = client(px.port('inbound'));
    c.s.write(
      'GET /wait?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\nGET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    await until(() => c.closed(), 'the third response and the close');
    expect(statuses(c.text())).toEqual(['200', '200', '200']);
    // The slow first response comes first: nothing of the second overtook it.
    expect(c.text().indexOf('waited\n')).toBeLessThan(c.text().indexOf('hello world\n'));
    const urls = backend.received.map((r) => r.url);
    expect(urls.indexOf('/wait?1')).toBeLessThan(urls.indexOf('/p2'));
    expect(urls.indexOf('/p2')).toBeLessThan(urls.indexOf('/p3'));
  });

  it('a malformed request pipelined behind a good one: the good one is answered, the bad one 400 and close, never forwarded', async () => {
    const before = backend.received.length;
    const out = await rawExchange(
      px.port('inbound'),
      'GET /good HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    );
    expect(statuses(out)).toEqual(['200', '400']);
    expect(out.toLowerCase()).toContain('x-remora-error: rmr_bad_request');
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/good']);
  });

  it('Expect: 100-continue gets 100 before the body is sent, then the body is forwarded', async () => {
    const c = client(px.port('inbound'));
    c.s.write(
      'POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n',
    );
    await c.waitFor(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '100 Continue');
    c.s.write('hello');
    await until(() => c.closed(), 'the echo');
    expect(c.text()).toMatch(/\r\n\r\nHTTP\/1\.1 200 /);
    expect(c.text()).toMatch(/\r\n5\r\nhello\r\n0\r\n\r\n$/); // chunked: the backend sent no length
  });

  it('HEAD: the head only, and the connection carries the next request', async () => {
    const c = client(px.port('inbound'));
    c.s.write('HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.waitFor(/\r\n\r\n/, 'the HEAD answer');
    c.s.write('GET /after-head HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    await until(() => c.closed(), 'the second answer');
    const [head, rest] = [
      c.text().slice(0, c.text().indexOf('\r\n\r\n') + 4),
      c.text().slice(c.text().indexOf('\r\n\r\n') + 4),
    ];
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head.toLowerCase()).not.toContain('transfer-encoding');
    expect(rest).toMatch(/^HTTP\/1\.1 200 /); // no body bytes between the two heads
    expect(rest).toContain('hello world\n');
  });

  it('an HTTP/1.0 client gets a body of unknown length close-delimited, never chunked', async () => {
    const out = await rawExchange(px.port('inbound'), 'GET /drip HTTP/1.0\r\nHost: a\r\n\r\n');
    const head = out.slice(0, out.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toMatch(/^http\/1\.1 200 /);
    expect(head).not.toContain('transfer-encoding');
    expect(head).toContain('connection: close');
    expect(out.slice(out.indexOf('\r\n\r\n') + 4)).toBe('chunk0\nchunk1\nchunk2\n');
  });

  it('keep-alive: answers say so, and one connection serves several requests in turn', async () => {
    const accepted = backend.acceptedSockets();
    const c = client(px.port('inbound'));
    for (let i = 0; i < 3; i++) {
      c.s.write(`GET /ka${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
      await until(
        () => statuses(c.text()).length === i + 1 && c.text().endsWith('hello world\n'),
        `answer ${i}`,
      );
    }
    expect(c.text().toLowerCase()).toContain('connection: keep-alive');
    expect(c.closed()).toBe(false);
    c.s.destroy();
    // The proxy's upstream side reused its pooled connection(s) too.
    expect(backend.acceptedSockets() - accepted).toBeLessThanOrEqual(1);
  });

  it('an idle keep-alive connection is closed by the stage after its keep-alive timeout (the ticker, no timer per socket)', async () => {
    const c = client(px.port('inbound'));
    c.s.write('GET /idle HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.waitFor(/hello world\n$/, 'the answer');
    expect(c.text().toLowerCase()).toContain('keep-alive: timeout=5');
    // Nothing more is sent: the stage closes it (5 s plus at most one tick), without an answer.
    await until(() => c.closed(), 'the idle close', 10_000);
    expect(statuses(c.text())).toEqual(['200']);
  }, 15_000);

  it('a 1 MiB request body streams through with backpressure and arrives whole', async () => {
    const size = 1024 * 1024;
    const c = client(px.port('inbound'));
    c.s.write(`POST /echo-big HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
    c.s.write(Buffer.alloc(size, 0x61));
    await until(() => c.closed(), 'the echo', 10_000);
    const body = c.text().slice(c.text().indexOf('\r\n\r\n') + 4);
    expect(dechunk(body).length).toBe(size);
    expect(backend.received.find((r) => r.url === '/echo-big')?.bodyBytes).toBe(size);
  });

  it('a request cut off in its body: the upstream request is aborted, not completed', async () => {
    const s = net.connect(px.port('inbound'), '127.0.0.1');
    s.on('error', () => undefined);
    s.write('POST /echo-cut HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-part');
    await until(() => backend.received.some((r) => r.url === '/echo-cut'), 'the request upstream');
    s.end();
    await until(() => backend.received.find((r) => r.url === '/echo-cut')?.aborted === true, 'the abort');
    expect(backend.received.find((r) => r.url === '/echo-cut')?.complete).toBe(false);
  });
});

describe('the codec server stage: response trailers', () => {
  let server: http.Server;
  let px: TestEngine;
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('part1,');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end('part2');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    px = await startEngine({
      [ENV.logLevel]: 'silent',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    });
  });
  afterAll(async () => {
    await px.engine.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('a chunked response keeps its trailers, in the last chunk', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'GET /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const head = out.slice(0, out.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toContain('transfer-encoding: chunked');
    const body = out.slice(out.indexOf('\r\n\r\n') + 4);
    expect(dechunk(body)).toBe('part1,part2');
    expect(body.toLowerCase()).toMatch(/\r\n0\r\nx-checksum: abc123\r\n\r\n$/);
  });
});
