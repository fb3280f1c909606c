import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../../proxy/src/errors.js';
import { requestPath } from '../../../proxy/src/http/server.js';
import { framingProblem, pathProblem, queryStart } from '../../../proxy/src/http/validate.js';

describe('pathProblem (RFC 3986 paths only)', () => {
  it.each(['/', '/a/b', "/a-._~!$&'()*+,;=:@/b", '/%41%7e%20', '/user:pass@host:8080/x'])(
    '%s is fine',
    (p) => {
      expect(pathProblem(p, 0, queryStart(p))).toBeUndefined();
    },
  );

  it.each([
    ['/a#b', '"#"'],
    ['/a\\b', '"\\"'],
    ['/a"b', '0x22'],
    ['/a<b', '0x3c'],
    ['/a{b', '0x7b'],
    ['/a|b', '0x7c'],
    ['/a^b', '0x5e'],
    ['/a`b', '0x60'],
    ['/a[b', '0x5b'],
    ['/a%zz', 'percent-encoding'],
    ['/a%4', 'percent-encoding'],
    ['/a%', 'percent-encoding'],
    ['/a%2fb', 'encoded slash'],
    ['/a%2Fb', 'encoded slash'],
    ['/a%5cb', 'encoded slash'],
    ['/a%5Cb', 'encoded slash'],
    ['/a%00', 'NUL'],
    ['/\u00e9', '0xe9'],
  ])('%j is refused (%s)', (p, why) => {
    expect(pathProblem(p, 0, queryStart(p))).toContain(why);
  });

  it('does not look at the query', () => {
    const t = '/a?x=#%zz\\"<>{}|^`[]';
    expect(pathProblem(t, 0, queryStart(t))).toBeUndefined();
  });
});

describe('requestPath (what the layers match and the app receives)', () => {
  it.each([
    ['/a/b?q=1', '/a/b?q=1'],
    ['/a/./b/../c', '/a/c'],
    ['//a///b', '/a/b'],
    ['/%61%62c?x=%2F', '/abc?x=%2F'],
    ['/a;v=1/b', '/a;v=1/b'],
    ['http://host/p?q', '/p?q'],
    ['https://host:8443', '/'],
    ['http://host?q', '/?q'],
    ['HTTP://host/a/../b', '/b'],
  ])('%s → %s', (target, path) => {
    expect(requestPath(target)).toBe(path);
  });

  it.each(['*', 'ftp://x/y', 'host/path', '/a#b', 'http://h/a\\b', 'http://h\\a', 'http://h/a%2Fb'])(
    '%s is refused with a BadRequestError',
    (target) => {
      expect(requestPath(target)).toBeInstanceOf(BadRequestError);
    },
  );
});

describe('framingProblem', () => {
  it.each([
    ['POST', ['Content-Length', '5']],
    ['POST', ['Transfer-Encoding', 'chunked']],
    ['GET', ['Content-Length', '0']],
    ['GET', ['X-Content-Length-Hint', '5', 'Accept', '*/*']],
    ['POST', ['My_Custom_Header', 'x']],
  ])('%s %j is fine', (method, raw) => {
    expect(framingProblem(method, raw)).toBeUndefined();
  });

  it.each([
    ['POST', ['Transfer_Encoding', 'chunked'], 'looks like a framing header'],
    ['POST', ['content_length', '5'], 'looks like a framing header'],
    ['POST', ['Transfer---Encoding', 'chunked'], 'looks like a framing header'],
    ['POST', ['Content-_Length', '1'], 'looks like a framing header'],
    ['POST', ['contentlength', '1'], 'looks like a framing header'],
    ['GET', ['Content-Length', '10'], 'GET with a body'],
    ['HEAD', ['transfer-encoding', 'chunked'], 'HEAD with a body'],
  ])('%s %j is refused: %s', (method, raw, why) => {
    expect(framingProblem(method, raw)).toContain(why);
  });
});
