import { describe, expect, it } from 'vitest';
import net from 'node:net';
import { detect, routeFor, sniff } from '../../../proxy/src/tcp/detect.js';

const clientHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

describe('sniff (protocol detection on the first bytes)', () => {
  it.each([
    ['GET / HTTP/1.1\r\n', 'http1'],
    ['POST /x HTTP/1.1\r\n', 'http1'],
    ['OPTIONS * HTTP/1.1\r\n', 'http1'],
    ['M-SEARCH * HTTP/1.1\r\n', 'http1'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http2'],
    ['SSH-2.0-OpenSSH_9.2\r\n', 'opaque'],
    ['FOO / HTTP/1.1\r\n', 'http-like'],
    ['get / HTTP/1.1\r\n', 'http-like'],
    ['get /admin HTTP/1.0\n', 'http-like'],
    ['bad_method\x01 /foo/bar HTTP/1.1\r\n', 'http-broken'],
    ['bad_method\x01 /', 'http-broken'],
    ['GET\x00 *', 'http-broken'],
    ['x\x7f y HTTP/1.1\r\n', 'http-broken'],
    ['\x00\x01\x02', 'opaque'],
    ['\x00\x00\x00\x08\x04\xd2\x16\x2f', 'opaque'], // PostgreSQL SSLRequest
    ['*1\r\n$4\r\nPING\r\n', 'opaque'], // Redis
    ['get key\r\n', 'opaque'], // memcached
    ['set k 0 0 1\r\nx\r\n', 'opaque'],
    ['AMQP\x00\x00\x09\x01\xc0', 'opaque'],
    // no control byte: decided at once, even before a space or a line end (a short text message)
    ['ping6', 'opaque'],
    ['get / HT', 'opaque'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ', 'opaque'], // no method is that long
  ])('%j → %s', (bytes, protocol) => {
    expect(sniff(Buffer.from(bytes, 'latin1'))).toBe(protocol);
  });

  it('recognises a TLS ClientHello', () => {
    expect(sniff(clientHello)).toBe('tls');
    expect(sniff(Buffer.from([0x16, 0x01]))).toBe('opaque');
  });

  it.each([
    [''],
    ['G'],
    ['GE'],
    ['GET'],
    ['PRI * HTTP/2'],
    ['\x16'],
    ['DELETE'],
    ['bad\x01'],
    ['bad\x01 x'],
    ['AMQP\x00\x00\x09\x01'],
  ])('%j → needs more bytes', (bytes) => {
    expect(sniff(Buffer.from(bytes, 'latin1'))).toBeUndefined();
  });
});

describe('detect (with its timeout, on real sockets)', () => {
  it('bytes that arrived while the engine was busy past the timeout are still sniffed (regression: HTTP under load taken for opaque)', async () => {
    const result = new Promise<string>((resolve) => {
      const server = net.createServer((s) => {
        detect(
          s,
          100,
          (sock, protocol) => {
            sock.destroy();
            server.close();
            resolve(protocol);
          },
          (sock) => {
            sock.destroy();
            server.close();
            resolve('gone');
          },
        );
        // The engine is busy for three times the timeout; the request is already in the kernel.
        const until = Date.now() + 300;
        while (Date.now() < until);
      });
      server.listen(0, '127.0.0.1', () => {
        const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () =>
          c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
        );
        c.on('error', () => undefined);
      });
    });
    expect(await result).toBe('http1');
  });

  it('a client that sends nothing is reported silent after the timeout', async () => {
    const result = new Promise<string>((resolve) => {
      const server = net.createServer((s) => {
        detect(
          s,
          50,
          (sock, protocol) => {
            sock.destroy();
            server.close();
            resolve(protocol);
          },
          () => resolve('gone'),
        );
      });
      server.listen(0, '127.0.0.1', () => {
        const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
        c.on('error', () => undefined);
      });
    });
    expect(await result).toBe('silent');
  });
});

describe('routeFor (what a detected connection becomes)', () => {
  it.each([
    // sniffed, strict (declared HTTP or L7-governed), route
    ['http1', false, 'http'],
    ['http1', true, 'http'],
    ['http-broken', false, 'reject'],
    ['http-broken', true, 'reject'],
    ['http-like', false, 'relay'],
    ['http-like', true, 'reject'],
    ['opaque', false, 'relay'],
    ['opaque', true, 'close'],
    ['tls', true, 'close'],
    // HTTP/2 goes to the HTTP/2 stage on every port (docs/grpc.md)
    ['http2', true, 'http2'],
    ['http2', false, 'http2'],
    ['silent', false, 'relay'],
    ['silent', true, 'http'],
  ] as const)('%s, strict %s → %s', (sniffed, strict, route) => {
    expect(routeFor(sniffed, strict)).toBe(route);
  });
});
