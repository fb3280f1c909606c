/**
 * Declared port protocols (REMORA_OPAQUE_PORTS, REMORA_OUTBOUND_HTTP_PORTS; the pod annotation
 * `remora.dev/opaque-ports` sets the first) on a real engine over loopback: a port declared HTTP
 * refuses what is not HTTP/1 even without any policy; a port declared opaque is relayed byte
 * for byte without detection, so a server-speaks-first protocol works at once.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { rawExchange, startEngine } from '../harness.js';
import type { TestEngine } from '../harness.js';

/** Speaks first (a banner), then records and echoes nothing: what it received is the proof. */
async function bannerServer(): Promise<{ port: number; received: () => string; close: () => Promise<void> }> {
  let got = '';
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write('220 banner ready\r\n');
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      s.end('221 bye\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => got,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

let opaqueApp: Awaited<ReturnType<typeof bannerServer>>;
let httpDest: Awaited<ReturnType<typeof bannerServer>>;
let proxy: TestEngine;

beforeAll(async () => {
  opaqueApp = await bannerServer();
  httpDest = await bannerServer();
  proxy = await startEngine({
    [ENV.inboundTarget]: `127.0.0.1:${opaqueApp.port}`,
    [ENV.outboundTarget]: `127.0.0.1:${httpDest.port}`,
    [ENV.opaquePorts]: `1,${opaqueApp.port}`,
    [ENV.outboundHttpPorts]: String(httpDest.port),
    // Long: a declared-opaque port must not wait for it (the banner would come after a minute).
    [ENV.detectTimeoutMs]: '60000',
  });
});

afterAll(async () => {
  await proxy?.engine.close();
  await opaqueApp?.close();
  await httpDest?.close();
});

describe('declared port protocols', () => {
  it('a port declared opaque is relayed at once and byte for byte: the banner comes first, an HTTP request goes through unparsed', async () => {
    const banner = await new Promise<string>((resolve) => {
      const s = net.connect(proxy.port('inbound'), '127.0.0.1');
      s.once('data', (d: Buffer) => {
        s.end('get / HTTP/1.1\r\nHost: x\r\n\r\n');
        resolve(d.toString('latin1'));
      });
      s.on('error', () => resolve('error'));
    });
    expect(banner).toBe('220 banner ready\r\n');
    await new Promise((r) => setImmediate(r));
    const deadline = Date.now() + 5000;
    while (opaqueApp.received() === '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Exactly the client's bytes: no Host rewrite, no 400 for the lower-case method.
    expect(opaqueApp.received()).toBe('get / HTTP/1.1\r\nHost: x\r\n\r\n');
  });

  it.each([
    ['a lower-case method', 'get / HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['binary bytes', '\x00\x01\x02\x03', /^$/],
    ['a TLS ClientHello', '\x16\x03\x01\x00\x05hello', /^$/],
  ])(
    'a destination declared HTTP refuses %s without any policy (never relayed)',
    async (_what, bytes, answer) => {
      const got = await rawExchange(proxy.port('outbound'), Buffer.from(bytes, 'latin1'), 3000);
      expect(got).toMatch(answer);
      expect(got).not.toContain('banner');
      expect(httpDest.received()).toBe('');
    },
  );

  it('a refused client that keeps sending after its 400 is cut (it cannot hold the connection open)', async () => {
    const closed = await new Promise<{ answer: string; closed: boolean }>((resolve) => {
      let answer = '';
      // Half-open allowed and writing on: the proxy's FIN does not end this side, only a cut does.
      const s = net.connect({ port: proxy.port('outbound'), host: '127.0.0.1', allowHalfOpen: true }, () =>
        s.write('get / HTTP/1.1\r\n'),
      );
      const t = setInterval(() => s.write('x'.repeat(64)), 50);
      s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(t);
        resolve({ answer, closed: true });
      });
    });
    expect(closed.answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(closed.closed).toBe(true);
  });
});
