/**
 * The HTTP/1.1 server stage on the project's codec (proxy/src/http/h1server.ts), raw sockets in
 * and bytes out through a real engine: what node:http did for us and the stage now does itself
 * (pipelining one at a time, 100-continue, HEAD, HTTP/1.0 close-delimited bodies, keep-alive,
 * request bodies with backpressure), and bad input arriving behind good input.
 */
import { createHook } from 'node:async_hooks';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, OTEL_ENV } from '../../../proxy/src/contract.js';
import { startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import type { OtlpReceiver } from '../../helpers/otlp-receiver.js';
import { startAssembled } from '../telemetry/assembled.js';
import type { AssembledProxy } from '../telemetry/assembled.js';
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

/**
 * A raw upstream that records each request head as it arrived in `arrived` and answers it
 * with `answer(path)`, then closes.
 */
async function headUpstream(
  arrived: string[],
  answer: (path: string) => string | Buffer,
): Promise<net.Server> {
  const upstream = net.createServer((s) => {
    let got = '';
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      arrived.push(got.slice(0, got.indexOf('\r\n\r\n') + 4));
      s.end(answer(got.split(' ')[1] as string));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  return upstream;
}

/** `n` GET requests on one connection, each sent after the previous answer arrived whole. */
async function inTurn(c: ReturnType<typeof client>, n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    c.s.write(`GET /${prefix}${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
    await until(
      () => statuses(c.text()).length === i + 1 && c.text().endsWith('hello world\n'),
      `answer ${i}`,
    );
  }
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
    await inTurn(c, 3, 'ka');
    expect(c.text().toLowerCase()).toContain('connection: keep-alive');
    expect(c.closed()).toBe(false);
    c.s.destroy();
    // The proxy's upstream side reused its pooled connection(s) too.
    expect(backend.acceptedSockets() - accepted).toBeLessThanOrEqual(1);
  });

  it("no read-more tick per request on the stage's socket (Readable's maybeReadMore, ~4k instructions each in Node 20)", async () => {
    // Counted by async_hooks: every process.nextTick is a TickObject whose resource carries the
    // callback and its arguments. The client reads with a 'data' listener too: its own socket
    // is the control that shows the count works on this Node.
    const port = px.port('inbound');
    let stage = 0;
    let control = 0;
    const c = client(port);
    const hook = createHook({
      init(_id, type, _trigger, resource) {
        if (type !== 'TickObject') return;
        const r = resource as { callback?: { name?: string }; args?: unknown[] };
        if (r.callback?.name !== 'maybeReadMore_') return;
        const sock = r.args?.[0];
        if (sock === c.s) control++;
        else if (sock instanceof net.Socket && sock.localPort === port) stage++;
      },
    });
    hook.enable();
    try {
      await inTurn(c, 40, 'tick');
    } finally {
      hook.disable();
      c.s.destroy();
    }
    expect(control).toBeGreaterThanOrEqual(40);
    // At most the detection's first read, whose tick was queued before the stage took over.
    expect(stage).toBeLessThanOrEqual(1);
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

  it('every byte value of a small body comes back as sent (the response goes out as one latin1 write)', async () => {
    const sent = Buffer.alloc(1024);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff;
    for (const size of [1, 255, 1024]) {
      const body = sent.subarray(0, size);
      const got = await new Promise<Buffer>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port: px.port('inbound'), method: 'POST', path: '/echo-bytes', agent: false },
          (res) => {
            const parts: Buffer[] = [];
            res.on('data', (c: Buffer) => parts.push(c));
            res.on('end', () => resolve(Buffer.concat(parts)));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      expect(got.equals(body), `size ${size}`).toBe(true);
    }
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

describe("the codec server stage: its socket's reads bypass the Readable (readslab.ts takeReads)", () => {
  it('after the detection no data event on the accepted socket over 40 requests, every one answered', async () => {
    const backend = await startBackend();
    // The inbound listener handed in, so the test sees the accepted socket too.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    let dataEvents = 0;
    server.on('connection', (s: net.Socket) => s.on('data', () => dataEvents++));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const px = await startEngine(
      {
        [ENV.logLevel]: 'silent',
        [ENV.httpServer]: 'codec',
        [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      },
      { inbound: server },
    );
    const c = client((server.address() as AddressInfo).port);
    try {
      await inTurn(c, 40, 'r');
    } finally {
      c.s.destroy();
      await px.engine.close();
      server.close();
      await backend.close();
    }
    // The detection's first read, and the same bytes again when the stage resumes (unshifted).
    expect(dataEvents).toBeLessThanOrEqual(2);
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

describe('the codec server stage: upstream response heads go out as they came, hop-by-hop fields dropped', () => {
  /** Canned upstream answers by request path, written raw (what node:http would not send). */
  const ANSWERS: Record<string, string> = {
    '/hop':
      'HTTP/1.1 201 Made Here\r\nDate: Mon, 07 Dec 2026 10:00:00 GMT\r\nX-A:  spaced \t\r\n' +
      'Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=9\r\nX-Secret: s\r\n' +
      'Proxy-Authenticate: Basic\r\nTE: trailers\r\nX-Remora-Orig-Proto: h2\r\n' +
      'X-B: \xe9t\xe9\r\nContent-Length: 2\r\n\r\nok',
    '/old': 'HTTP/1.0 200 OK\r\nX-C: 1\r\n\r\nclose-delimited',
    '/noreason': 'HTTP/1.1 204 \r\nX-D: 1\r\n\r\n',
    '/named-length': 'HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nabc',
  };
  let upstream: net.Server;
  let px: TestEngine;
  /** the request heads as the upstream got them */
  const arrived: string[] = [];
  beforeAll(async () => {
    upstream = await headUpstream(arrived, (path) =>
      Buffer.from(ANSWERS[path] ?? 'HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n', 'latin1'),
    );
    px = await startEngine({
      [ENV.logLevel]: 'silent',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    });
  });
  afterAll(async () => {
    await px.engine.close();
    await new Promise((r) => upstream.close(r));
  });
  const get = async (path: string): Promise<{ head: string; body: string }> => {
    const out = await rawExchange(
      px.port('inbound'),
      `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    );
    const at = out.indexOf('\r\n\r\n');
    return { head: out.slice(0, at + 2), body: out.slice(at + 4) };
  };

  it('end-to-end lines byte for byte (spacing, obs-text), Connection-named and hop-by-hop fields left out, one Date', async () => {
    const { head, body } = await get('/hop');
    expect(
      head.startsWith('HTTP/1.1 201 Made Here\r\nDate: Mon, 07 Dec 2026 10:00:00 GMT\r\nX-A:  spaced \t\r\n'),
    ).toBe(true);
    expect(head).toContain('\r\nX-B: \xe9t\xe9\r\nContent-Length: 2\r\n');
    for (const gone of [
      'X-Secret',
      'Keep-Alive: timeout=9',
      'Proxy-Authenticate',
      'TE:',
      'X-Remora-Orig-Proto',
    ])
      expect(head).not.toContain(gone);
    expect(head.match(/^date:/gim)).toHaveLength(1);
    expect(head).toMatch(/\r\nconnection: close\r\n$/);
    expect(head.toLowerCase()).not.toContain('transfer-encoding');
    expect(body).toBe('ok');
  });

  it('the request head goes up as it came too: its lines byte for byte, in order, hop-by-hop, Connection-named and forged identity fields left out', async () => {
    const before = arrived.length;
    await rawExchange(
      px.port('inbound'),
      'GET /req?q=1 HTTP/1.1\r\nhOST: a\r\nX-Sp:   a  b \t\r\nConnection: keep-alive, X-Secret\r\n' +
        'X-Secret: s\r\nKeep-Alive: timeout=5\r\nX-O:\xe9t\xe9\r\nTE: trailers\r\nProxy-Authorization: Basic x\r\n' +
        'X-Remora-Peer-Identity: spiffe://forged/ns/a/sa/b\r\nX-Last:v\r\nConnection: close\r\n\r\n',
    );
    expect(arrived.length).toBe(before + 1);
    // Runs of kept lines are cut out of the head as received: three runs here.
    expect(arrived[before]).toBe(
      // (the client wrote its string as UTF-8: é is two bytes, seen here as two latin1 chars)
      `GET /req?q=1 HTTP/1.1\r\nhOST: a\r\nX-Sp:   a  b \t\r\nX-O:${Buffer.from('\xe9t\xe9').toString('latin1')}\r\nX-Last:v\r\n\r\n`,
    );
  });

  it('an HTTP/1.0 answer: our own status line, chunked to the 1.1 client, a Date added', async () => {
    const { head, body } = await get('/old');
    expect(head.startsWith('HTTP/1.1 200 OK\r\nX-C: 1\r\n')).toBe(true);
    expect(head).toContain('transfer-encoding: chunked\r\n');
    expect(head).toMatch(/\r\ndate: /);
    expect(dechunk(body)).toBe('close-delimited');
  });

  it('no reason phrase: the standard one; a 204 goes without framing or body', async () => {
    const { head, body } = await get('/noreason');
    expect(head.startsWith('HTTP/1.1 204 No Content\r\nX-D: 1\r\n')).toBe(true);
    expect(head.toLowerCase()).not.toMatch(/content-length|transfer-encoding/);
    expect(body).toBe('');
  });

  it('a Content-Length that Connection names is hop-by-hop: dropped, the body chunked', async () => {
    const { head, body } = await get('/named-length');
    expect(head).not.toContain('Content-Length');
    expect(head).toContain('transfer-encoding: chunked\r\n');
    expect(dechunk(body)).toBe('abc');
  });
});

describe('the codec server stage: Expect other than 100-continue, and request trailers', () => {
  /** What the backend saw of each request: its head fields, trailers, body, and how it ended. */
  interface Seen {
    url: string;
    headers: http.IncomingHttpHeaders;
    trailers: Record<string, string | undefined>;
    body: string;
    complete: boolean;
  }
  const seen: Seen[] = [];
  let server: http.Server;
  let rawUp: net.Server;
  /** what the raw upstream answers next (a chunked response with its trailer section) */
  let rawAnswer = '';
  let px: TestEngine;
  let pxRaw: TestEngine;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const r: Seen = { url: req.url ?? '', headers: req.headers, trailers: {}, body: '', complete: false };
      seen.push(r);
      req.setEncoding('latin1');
      req.on('data', (c: string) => (r.body += c));
      req.on('end', () => {
        r.complete = true;
        r.trailers = { ...req.trailers };
        res.end('ok\n');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    rawUp = net.createServer((s) => {
      s.on('data', () => s.end(rawAnswer));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => rawUp.listen(0, '127.0.0.1', r));
    px = await startEngine({
      [ENV.logLevel]: 'silent',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    });
    pxRaw = await startEngine({
      [ENV.logLevel]: 'silent',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${(rawUp.address() as AddressInfo).port}`,
    });
  });
  afterAll(async () => {
    await px.engine.close();
    await pxRaw.engine.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await new Promise((r) => rawUp.close(r));
  });

  it('Expect: anything but 100-continue is 417 RMR_EXPECTATION_FAILED from the one error writer, closed, never forwarded', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'POST /exp-417 HTTP/1.1\r\nHost: a\r\nExpect: x-foo\r\nContent-Length: 5\r\n\r\nhello',
    );
    expect(out).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/);
    const head = out.slice(0, out.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toContain('x-remora-error: rmr_expectation_failed');
    expect(head).toContain('connection: close');
    expect(out).toContain('expectation not supported: Expect: x-foo');
    // a list with 100-continue and something else is still an expectation we cannot meet
    const list = await rawExchange(
      px.port('inbound'),
      'GET /exp-417-list HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x-bar\r\n\r\n',
    );
    expect(list).toMatch(/^HTTP\/1\.1 417 /);
    expect(seen.some((r) => r.url.startsWith('/exp-417'))).toBe(false);
  });

  it('Expect on an HTTP/1.0 request is ignored (RFC 9110 §10.1.1: 1.1 only), and not forwarded', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'GET /exp-10 HTTP/1.0\r\nHost: a\r\nExpect: x-foo\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen.find((r) => r.url === '/exp-10')?.headers.expect).toBeUndefined();
  });

  it('a chunked request body keeps its trailer fields upstream; hop-by-hop and forbidden trailer fields are dropped', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'POST /tr-ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: close\r\n\r\n' +
        '5\r\nhello\r\n6\r\n world\r\n0\r\n' +
        'X-Checksum: abc123\r\nKeep-Alive: timeout=1\r\nSet-Cookie: a=b\r\nAuthorization: Bearer t\r\n' +
        'X-Remora-Peer-Identity: spiffe://evil\r\nProxy-Foo: 1\r\nContent-Type: text/evil\r\nX-Other: 2\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    const r = seen.find((x) => x.url === '/tr-ok');
    expect(r?.complete).toBe(true);
    expect(r?.body).toBe('hello world');
    expect(r?.trailers).toEqual({ 'x-checksum': 'abc123', 'x-other': '2' });
  });

  it('a chunked request body without trailers still ends cleanly upstream (no empty trailer section)', async () => {
    const out = await rawExchange(
      px.port('inbound'),
      'POST /tr-none HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    const r = seen.find((x) => x.url === '/tr-none');
    expect([r?.complete, r?.body, r?.trailers]).toEqual([true, 'abc', {}]);
  });

  it.each([
    ['a control byte in a trailer value', 'X-Bad: a\x01b\r\n\r\n'],
    ['a bare LF in the trailer section', 'X-Bad: a\n\r\n'],
    ['Content-Length in a trailer', 'Content-Length: 5\r\n\r\n'],
    ['an obs-fold in a trailer', 'X-A: 1\r\n  folded\r\n\r\n'],
  ])(
    'bad request trailer bytes (%s) are refused: 400, and the upstream request never completes',
    async (what, tail) => {
      const url = `/tr-bad-${seen.length}-${what.length}`;
      const out = await rawExchange(
        px.port('inbound'),
        `POST ${url} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${tail}`,
      );
      expect(out).toMatch(/^HTTP\/1\.1 400 /);
      expect(out.toLowerCase()).toContain('x-remora-error: rmr_bad_request');
      // The head may have gone upstream (it goes with the first body bytes); the body never ended.
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.find((x) => x.url === url)?.complete ?? false).toBe(false);
    },
  );

  it('response trailers pass to the client in the last chunk, filtered the same way', async () => {
    rawAnswer =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n' +
      '4\r\nbody\r\n0\r\nX-Checksum: abc123\r\nKeep-Alive: timeout=9\r\nSet-Cookie: late=1\r\nX-Other: 2\r\n\r\n';
    const out = await rawExchange(
      pxRaw.port('inbound'),
      'GET /rtr HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    const body = out.slice(out.indexOf('\r\n\r\n') + 4);
    expect(dechunk(body)).toBe('body');
    expect(body).toMatch(/\r\n0\r\nX-Checksum: abc123\r\nX-Other: 2\r\n\r\n$/);
  });

  it('bad response trailer bytes: the response is cut, the client never sees a clean end of the body', async () => {
    rawAnswer =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Bad: a\x01b\r\n\r\n';
    const out = await rawExchange(
      pxRaw.port('inbound'),
      'GET /rtr-bad HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    // Either the error answer (nothing sent yet) or a cut chunked body: never the last chunk.
    if (/^HTTP\/1\.1 200 /.test(out)) expect(out).not.toMatch(/\r\n0\r\n/);
    else expect(out).toMatch(/^HTTP\/1\.1 502 /);
  });
});

describe("the codec server stage with tracing on: the proxy's traceparent beside the lines as they came", () => {
  let upstream: net.Server;
  let rx: OtlpReceiver;
  let px: AssembledProxy;
  const arrived: string[] = [];
  beforeAll(async () => {
    upstream = await headUpstream(arrived, () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    rx = await startOtlpReceiver({ discard: true });
    // Assembled as in production: the telemetry layers are the assembler's (assemble.ts).
    px = await startAssembled('h1-traced', {
      [ENV.logLevel]: 'warn',
      [ENV.accessLog]: 'false',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      [ENV.traceSampling]: '0',
      [OTEL_ENV.endpoint]: rx.url,
    });
  });
  afterAll(async () => {
    await px.stop();
    await new Promise((r) => upstream.close(r));
    await rx.close();
  });

  it("a new trace: the fields as they came, then one traceparent of its own; a caller's is replaced where it stood, in lower case", async () => {
    await rawExchange(
      px.port('inbound'),
      'GET /a HTTP/1.1\r\nHost:  a \r\nX-K:v\r\nConnection: close\r\n\r\n',
    );
    expect(arrived.at(-1)).toMatch(
      /^GET \/a HTTP\/1\.1\r\nHost: {2}a \r\nX-K:v\r\ntraceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-00\r\n\r\n$/,
    );
    const caller = '0af7651916cd43dd8448eb211c80319c';
    await rawExchange(
      px.port('inbound'),
      `GET /b HTTP/1.1\r\nHost: a\r\nTraceParent:  00-${caller}-b7ad6b7169203331-01\r\nX-K:  v\r\nConnection: close\r\n\r\n`,
    );
    const head = arrived.at(-1) as string;
    expect(head).toMatch(
      new RegExp(
        `^GET /b HTTP/1\\.1\\r\\nHost: a\\r\\ntraceparent: 00-${caller}-[0-9a-f]{16}-01\\r\\nX-K: {2}v\\r\\n\\r\\n$`,
      ),
    );
    expect(head).not.toContain('b7ad6b7169203331');
  });
});
