/**
 * Body framing (proxy/src/http1/framing.ts): chunked edge cases, response framing by status
 * and method, and the decoder's no-copy promise.
 */
import { describe, expect, it } from 'vitest';
import {
  BODY_CHUNKED,
  BODY_CLOSE,
  BODY_INFORMATIONAL,
  BODY_LENGTH,
  BODY_NONE,
  BODY_TUNNEL,
  BodyDecoder,
  EV_DATA,
  EV_END,
  EV_NEED_MORE,
} from '../../../proxy/src/http1/framing.js';
import { R_DATA, R_END, R_HEAD, ResponseReader } from '../../../proxy/src/http1/reader.js';
import { LIMITS, readRequests, readResponses } from './drive.js';

const chunkedReq = (body: string) =>
  readRequests([Buffer.from(`POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, 'latin1')]);

describe('chunked bodies', () => {
  const ok: [string, string, string, string[]][] = [
    ['one chunk', '5\r\nhello\r\n0\r\n\r\n', 'hello', []],
    [
      'upper- and lower-case hex, leading zeros',
      '0000A\r\n0123456789\r\n00b\r\nabcdefghijk\r\n000\r\n\r\n',
      '0123456789abcdefghijk',
      [],
    ],
    [
      'extensions: token, token=token, token="quoted", several',
      '5;a\r\nhello\r\n1;b=c;d="e \\" f"\r\n!\r\n0;last\r\n\r\n',
      'hello!',
      [],
    ],
    ['trailers', '2\r\nok\r\n0\r\nX-Sum: 42\r\nX-Other:  v \r\n\r\n', 'ok', ['X-Sum', '42', 'X-Other', 'v']],
    ['a chunk containing CRLF bytes', '4\r\n\r\n\r\n\r\n0\r\n\r\n', '\r\n\r\n', []],
  ];
  it.each(ok)('accepted: %s', (_name, body, data, trailers) => {
    const t = chunkedReq(body);
    expect(t.error).toBeUndefined();
    expect(t.messages[0]).toMatchObject({ body: BODY_CHUNKED, data, trailers, complete: true });
  });

  const bad: [string, string, string][] = [
    ['no size', '\r\nhello\r\n0\r\n\r\n', 'chunk_size'],
    ['not hex', 'zz\r\nhello\r\n0\r\n\r\n', 'chunk_size'],
    ['a sign', '+5\r\nhello\r\n0\r\n\r\n', 'chunk_size'],
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n', 'chunk_size'],
    ['size overflow (2^52 and beyond)', '10000000000000\r\nx\r\n0\r\n\r\n', 'chunk_size_overflow'],
    ['64-bit wrap-around size', 'ffffffffffffffff1\r\nx\r\n0\r\n\r\n', 'chunk_size_overflow'],
    ['whitespace after the size', '5 \r\nhello\r\n0\r\n\r\n', 'chunk_size'],
    ['whitespace before an extension', '5 ;a\r\nhello\r\n0\r\n\r\n', 'chunk_size'],
    ['whitespace inside an extension', '5;a = b\r\nhello\r\n0\r\n\r\n', 'chunk_extension'],
    ['an empty extension', '5;\r\nhello\r\n0\r\n\r\n', 'chunk_extension'],
    ['an empty extension value', '5;a=\r\nhello\r\n0\r\n\r\n', 'chunk_extension'],
    ['a control character in a quoted extension', '5;a="b\x01"\r\nhello\r\n0\r\n\r\n', 'chunk_extension'],
    ['a bare LF in an extension (the "funky chunks" smuggle)', '5;a\nhello\r\n0\r\n\r\n', 'chunk_extension'],
    ['size line ended by a bare LF', '5\nhello\r\n0\r\n\r\n', 'chunk_line'],
    ['size line ended by CR without LF', '5\rhello\r\n0\r\n\r\n', 'chunk_line'],
    ['data not followed by CRLF', '2\r\nokXX0\r\n\r\n', 'chunk_missing_crlf'],
    ['data followed by a bare LF', '2\r\nok\n0\r\n\r\n', 'chunk_missing_crlf'],
    ['data longer than its size', '2\r\nhello\r\n0\r\n\r\n', 'chunk_missing_crlf'],
    ['a chunk-size line past its limit', `1;${'a'.repeat(5000)}\r\nx\r\n0\r\n\r\n`, 'chunk_line_too_long'],
    ['Content-Length in the trailers', '0\r\nContent-Length: 5\r\n\r\n', 'trailer'],
    ['Transfer-Encoding in the trailers', '0\r\nTransfer-Encoding: chunked\r\n\r\n', 'trailer'],
    ['a bare LF in the trailers', '0\r\nX: 1\n\r\n', 'bare_lf'],
    ['obs-fold in the trailers', '0\r\nX: 1\r\n 2\r\n\r\n', 'obs_fold'],
  ];
  it.each(bad)('refused: %s', (_name, body, reason) => {
    const t = chunkedReq(body);
    expect(t.error?.reason).toBe(reason);
    expect(['RMR_HTTP1_CHUNK', 'RMR_HTTP1_SYNTAX']).toContain(t.error?.code);
    expect(t.messages[0]?.complete).toBe(false);
  });

  it('a trailer section over the head limit is refused as too large', () => {
    const t = readRequests(
      [
        Buffer.from(
          `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${'a'.repeat(2000)}\r\n\r\n`,
        ),
      ],
      { maxHeadBytes: 1024, maxFields: 10 },
    );
    expect(t.error?.code).toBe('RMR_HTTP1_HEAD_TOO_LARGE');
  });

  it('a body cut off by the end of the stream is incomplete, never complete', () => {
    for (const body of ['5\r\nhel', '5\r\nhello\r\n', '5\r\nhello\r\n0\r\n', '5\r\nhello\r\n0\r\nX: 1\r\n']) {
      const t = chunkedReq(body);
      expect(t.error, body).toEqual({ code: 'RMR_HTTP1_INCOMPLETE', reason: 'incomplete' });
      expect(t.messages[0]?.complete).toBe(false);
    }
    const cl = readRequests([Buffer.from('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello')]);
    expect(cl.error?.code).toBe('RMR_HTTP1_INCOMPLETE');
    expect(cl.messages[0]?.data).toBe('hello');
  });

  it('hands out body bytes as ranges of the input Buffer (no copy)', () => {
    const d = new BodyDecoder('request', LIMITS);
    d.start(BODY_CHUNKED, 0);
    const buf = Buffer.from('5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\nNEXT', 'latin1');
    const seen: string[] = [];
    let off = 0;
    for (;;) {
      const ev = d.decode(buf, off);
      off = d.pos;
      if (ev === EV_DATA) {
        seen.push(`${d.dataStart}-${d.dataEnd}`);
        continue;
      }
      expect(ev).toBe(EV_END);
      break;
    }
    expect(seen).toEqual(['3-8', '17-20']);
    expect(buf.toString('latin1', off)).toBe('NEXT');
    expect(d.decode(buf, buf.length)).toBe(EV_END); // idle: ends at once
  });

  it('Content-Length: one range, then the end; more input is left for the next message', () => {
    const d = new BodyDecoder('request', LIMITS);
    d.start(BODY_LENGTH, 4);
    const buf = Buffer.from('abcdefg');
    expect(d.decode(buf, 1)).toBe(EV_DATA);
    expect([d.dataStart, d.dataEnd]).toEqual([1, 5]);
    expect(d.decode(buf, d.pos)).toBe(EV_END);
    expect(d.pos).toBe(5);
    d.start(BODY_LENGTH, 10);
    expect(d.decode(buf, 7)).toBe(EV_NEED_MORE);
  });
});

describe('response framing', () => {
  const cases: [string, string, string, number, string, boolean][] = [
    // name, method, bytes, body kind, data, complete
    ['Content-Length', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', BODY_LENGTH, 'ok', true],
    [
      'chunked',
      'GET',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      BODY_CHUNKED,
      'ok',
      true,
    ],
    [
      'close-delimited: the body runs to the end of the stream',
      'GET',
      'HTTP/1.1 200 OK\r\n\r\nuntil the end',
      BODY_CLOSE,
      'until the end',
      true,
    ],
    [
      '204 with Content-Length: no body',
      'GET',
      'HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n',
      BODY_NONE,
      '',
      true,
    ],
    [
      '304 with Content-Length: no body',
      'GET',
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n',
      BODY_NONE,
      '',
      true,
    ],
    [
      '304 with Transfer-Encoding: no body',
      'GET',
      'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n',
      BODY_NONE,
      '',
      true,
    ],
    [
      'HEAD: Content-Length but no body',
      'HEAD',
      'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n',
      BODY_NONE,
      '',
      true,
    ],
    [
      'HEAD: chunked but no body',
      'HEAD',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      BODY_NONE,
      '',
      true,
    ],
    ['Content-Length: 0', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', BODY_NONE, '', true],
    ['2xx to CONNECT: a tunnel', 'CONNECT', 'HTTP/1.1 200 OK\r\n\r\n', BODY_TUNNEL, '', false],
    ['an HTTP/1.0 response without length', 'GET', 'HTTP/1.0 200 OK\r\n\r\nold', BODY_CLOSE, 'old', true],
  ];
  it.each(cases)('%s', (_name, method, bytes, body, data, complete) => {
    const t = readResponses([Buffer.from(bytes, 'latin1')], method);
    expect(t.error).toBeUndefined();
    expect(t.messages).toHaveLength(1);
    expect(t.messages[0]).toMatchObject({ body, data, complete });
  });

  it('1xx then 200: the interim heads come first, then the final one with its body', () => {
    const t = readResponses([
      Buffer.from(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
      ),
    ]);
    expect(t.error).toBeUndefined();
    expect(t.messages.map((m) => [m.start, m.body, m.data])).toEqual([
      ['HTTP/1.1 100 Continue', BODY_INFORMATIONAL, ''],
      ['HTTP/1.1 103 Early Hints', BODY_INFORMATIONAL, ''],
      ['HTTP/1.1 200 OK', BODY_LENGTH, 'ok'],
    ]);
    expect(t.messages[2]?.complete).toBe(true);
  });

  it('101 to an Upgrade: a tunnel, and the bytes after the head are left to the caller', () => {
    const t = readResponses(
      [
        Buffer.from(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello',
          'latin1',
        ),
      ],
      'GET',
      LIMITS,
      false,
      true,
    );
    expect(t.error).toBeUndefined();
    expect(t.messages[0]?.body).toBe(BODY_TUNNEL);
    expect(t.rest).toBe(7);
  });

  it('bytes after a complete response with no request outstanding are refused (fastpool /extra)', () => {
    const r = new ResponseReader(LIMITS);
    r.expect('GET', false);
    const b = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n');
    expect(r.next(b, 0)).toBe(R_HEAD);
    expect(r.next(b, r.pos)).toBe(R_DATA);
    expect(r.next(b, r.pos)).toBe(R_END);
    expect(() => r.next(b, r.pos)).toThrow(expect.objectContaining({ code: 'RMR_HTTP1_UNEXPECTED_DATA' }));
  });

  it('a close-delimited body ends only at the end of the stream; a Content-Length body cut short is incomplete', () => {
    const open = readResponses([Buffer.from('HTTP/1.1 200 OK\r\n\r\npart')], 'GET', LIMITS, false);
    expect(open.messages[0]).toMatchObject({ data: 'part', complete: false });
    const cut = readResponses([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart')]);
    expect(cut.error?.code).toBe('RMR_HTTP1_INCOMPLETE');
  });
});
