/**
 * Head encoding (proxy/src/http1/encode.ts): exact bytes out for heads in, hop-by-hop fields
 * left out (RFC 9110 §7.6.1, incl. the fields Connection names), the proxy's own framing and
 * fields, and the proxy's fields checked for injection.
 */
import { describe, expect, it } from 'vitest';
import {
  BODY_CHUNKED,
  BODY_CLOSE,
  BODY_LENGTH,
  BODY_NONE,
  requestBody,
  responseBody,
} from '../../../proxy/src/http1/framing.js';
import {
  LAST_CHUNK,
  chunkPrefix,
  encodeLastChunk,
  encodeRequestHead,
  encodeResponseHead,
} from '../../../proxy/src/http1/encode.js';
import { R_DATA, R_END, R_HEAD, RequestReader, ResponseReader } from '../../../proxy/src/http1/reader.js';
import { LIMITS, readRequests } from './drive.js';

function request(text: string): RequestReader {
  const r = new RequestReader(LIMITS);
  expect(r.next(Buffer.from(text, 'latin1'), 0)).toBe(R_HEAD);
  return r;
}

function response(text: string, method = 'GET'): ResponseReader {
  const r = new ResponseReader(LIMITS);
  r.expect(method, false);
  expect(r.next(Buffer.from(text, 'latin1'), 0)).toBe(R_HEAD);
  return r;
}

describe('request heads', () => {
  it('forwards end-to-end lines byte for byte and leaves out every hop-by-hop field', () => {
    const r = request(
      'POST /p?q=1 HTTP/1.1\r\nHost: svc\r\nX-Keep:  a  b \r\nConnection: keep-alive, X-Secret , close\r\n' +
        'Keep-Alive: timeout=5\r\nX-Secret: s\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: Basic x\r\n' +
        'Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nExpect: 100-continue\r\nx_remora_peer-IDENTITY: spiffe://forged\r\n' +
        'Transfer-Encoding: chunked\r\nAccept: */*\r\n\r\n',
    );
    const out = encodeRequestHead(r.head, {
      framing: requestBody(r.head),
      length: 0,
      extra: ['x-remora-peer-identity', 'spiffe://td/ns/a/sa/b'],
    });
    expect(out.toString('latin1')).toBe(
      'POST /p?q=1 HTTP/1.1\r\nHost: svc\r\nX-Keep:  a  b \r\nAccept: */*\r\n' +
        'transfer-encoding: chunked\r\nx-remora-peer-identity: spiffe://td/ns/a/sa/b\r\n\r\n',
    );
  });

  it('re-emits the framing canonically: a Content-Length, or the coding list in lower case', () => {
    const cl = request('PUT / HTTP/1.1\r\ncontent-LENGTH:   007\r\nX: 1\r\n\r\n');
    expect(cl.head.contentLength).toBe(7);
    expect(encodeRequestHead(cl.head, { framing: BODY_LENGTH, length: 7, extra: [] }).toString()).toBe(
      'PUT / HTTP/1.1\r\nX: 1\r\ncontent-length: 7\r\n\r\n',
    );
    const te = request(
      'POST / HTTP/1.1\r\nTransfer-Encoding: GZIP;q=1 ,\r\nTransfer-Encoding: Chunked;x\r\n\r\n',
    );
    expect(encodeRequestHead(te.head, { framing: BODY_CHUNKED, length: 0, extra: [] }).toString()).toBe(
      'POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n',
    );
  });

  it('sends its own version and, when asked, an origin-form target', () => {
    const r = request('GET http://svc.test/a?b HTTP/1.0\r\nHost: svc.test\r\n\r\n');
    expect(
      encodeRequestHead(r.head, { framing: BODY_NONE, length: 0, extra: [], target: '/a?b' }).toString(),
    ).toBe('GET /a?b HTTP/1.1\r\nHost: svc.test\r\n\r\n');
  });

  it('forwards Upgrade (with its own Connection) only on the tunnel path', () => {
    const r = request(
      'GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n',
    );
    expect(
      encodeRequestHead(r.head, { framing: BODY_NONE, length: 0, extra: [], upgrade: true }).toString(),
    ).toBe('GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nconnection: upgrade\r\n\r\n');
    expect(encodeRequestHead(r.head, { framing: BODY_NONE, length: 0, extra: [] }).toString()).toBe(
      'GET /ws HTTP/1.1\r\nSec-WebSocket-Key: k\r\n\r\n',
    );
  });

  it('what it sends parses back to the same end-to-end fields', () => {
    const text = 'GET / HTTP/1.1\r\nA: 1\r\nConnection: b\r\nB: 2\r\nC: 3\r\nKeep-Alive: 1\r\nD: 4\r\n\r\n';
    const r = request(text);
    const out = encodeRequestHead(r.head, { framing: BODY_NONE, length: 0, extra: ['via', '1.1 remora'] });
    const again = readRequests([out]);
    expect(again.messages[0]?.fields).toEqual(['A', '1', 'C', '3', 'D', '4', 'via', '1.1 remora']);
  });

  it.each([
    ['a CRLF in a value', ['x-a', 'v\r\nx-injected: 1']],
    ['a bare LF in a value', ['x-a', 'v\nx']],
    ['NUL in a value', ['x-a', 'v\x00']],
    ['a space in a name', ['x a', 'v']],
    ['a colon in a name', ['x:a', 'v']],
    ['an empty name', ['', 'v']],
    ['a character beyond latin1', ['x-a', 'v\u2028']],
  ])('refuses a proxy field with %s', (_name, extra) => {
    const r = request('GET / HTTP/1.1\r\n\r\n');
    expect(() => encodeRequestHead(r.head, { framing: BODY_NONE, length: 0, extra })).toThrow(
      /cannot encode/,
    );
  });

  it.each([
    ['a space', '/a b'],
    ['a CR smuggled as U+010D', '/a\u010dx'],
    ['a LF', '/a\nb'],
    ['nothing', ''],
  ])('refuses a target with %s', (_name, target) => {
    const r = request('GET / HTTP/1.1\r\n\r\n');
    expect(() => encodeRequestHead(r.head, { framing: BODY_NONE, length: 0, extra: [], target })).toThrow(
      /cannot encode the proxy's target/,
    );
  });
});

describe('response heads', () => {
  it('keeps the status line after the version, drops hop-by-hop fields, frames the body itself', () => {
    const r = response(
      'HTTP/1.0 404 Not  Found\r\nServer: up\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\nSet-Cookie: a=b\r\n\r\nabc',
    );
    expect(responseBody(r.head, 'GET', false)).toBe(BODY_LENGTH);
    expect(encodeResponseHead(r.head, { framing: BODY_LENGTH, length: 3, extra: [] }).toString()).toBe(
      'HTTP/1.1 404 Not  Found\r\nServer: up\r\nSet-Cookie: a=b\r\ncontent-length: 3\r\n\r\n',
    );
  });

  it('a close-delimited upstream body can go out chunked; HEAD and 304 keep their Content-Length', () => {
    const close = response('HTTP/1.1 200 OK\r\nX: 1\r\n\r\n');
    expect(close.body).toBe(BODY_CLOSE);
    expect(encodeResponseHead(close.head, { framing: BODY_CHUNKED, length: 0, extra: [] }).toString()).toBe(
      'HTTP/1.1 200 OK\r\nX: 1\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    const head = response('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', 'HEAD');
    expect(
      encodeResponseHead(head.head, {
        framing: BODY_NONE,
        length: 0,
        extra: [],
        keepLength: true,
      }).toString(),
    ).toBe('HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n');
    const noContent = response('HTTP/1.1 204\r\nContent-Length: 5\r\n\r\n');
    expect(encodeResponseHead(noContent.head, { framing: BODY_NONE, length: 0, extra: [] }).toString()).toBe(
      'HTTP/1.1 204\r\n\r\n',
    );
  });

  it('chunks and trailers: prefixes, the last chunk, forwarded trailer lines', () => {
    expect(chunkPrefix(255)).toBe('ff\r\n');
    expect(LAST_CHUNK.toString()).toBe('0\r\n\r\n');
    const r = new ResponseReader(LIMITS);
    r.expect('GET', false);
    const b = Buffer.from(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\ngrpc-status: 0\r\nConnection: x\r\n\r\n',
    );
    expect(r.next(b, 0)).toBe(R_HEAD);
    expect(r.next(b, r.pos)).toBe(R_DATA);
    expect(r.next(b, r.pos)).toBe(R_END);
    expect(encodeLastChunk(r.decoder.trailers).toString()).toBe('0\r\ngrpc-status: 0\r\n\r\n');
  });
});
