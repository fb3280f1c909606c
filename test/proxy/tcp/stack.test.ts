import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { sample, scrape, startEngine, until } from '../harness.js';
import type { TestEngine } from '../harness.js';

// A TCP echo server, plus a greeting for server-speaks-first clients.
let echo: net.Server;
let echoPort: number;
let px: TestEngine;

beforeAll(async () => {
  echo = net.createServer({ allowHalfOpen: true }, (s) => {
    s.write('220 hello\r\n');
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
  px = await startEngine({
    [ENV.outboundTarget]: `127.0.0.1:${echoPort}`,
    [ENV.inboundTarget]: `127.0.0.1:${echoPort}`,
    [ENV.detectTimeoutMs]: '200',
  });
});
afterAll(async () => {
  await px.engine.close();
  echo.close();
});

function talk(port: number, first: Buffer | undefined, expectEcho: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => {
      if (first) s.write(first);
    });
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes(expectEcho)) {
        s.end();
      }
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

describe('opaque TCP relay with protocol labels', () => {
  it.each([
    ['tls', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])],
    ['opaque', Buffer.from('SSH-2.0-test\r\n')],
    // (the HTTP/2 preface is no longer relayed: it goes to the HTTP/2 stage, test/proxy/http2/)
    ['opaque', Buffer.from('*1\r\n$4\r\nPING\r\n')],
  ])('relays %s bytes on the outbound listener and echoes them back', async (protocol, bytes) => {
    const got = await talk(px.port('outbound'), bytes, bytes.toString('latin1'));
    expect(got).toContain('220 hello');
    expect(got).toContain(bytes.toString('latin1'));
    const text = await scrape(px.port('metrics'));
    expect(
      sample(text, 'remora_tcp_connections_opened_total', { direction: 'outbound', protocol }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('relays a server-speaks-first client after the detection timeout', async () => {
    const got = await new Promise<string>((resolve) => {
      let buf = '';
      let quit = false;
      const s = net.connect(px.port('inbound'), '127.0.0.1');
      s.on('data', (c: Buffer) => {
        buf += c.toString();
        if (!quit && buf.includes('220 hello')) {
          quit = true;
          s.write('QUIT\r\n');
        }
        if (buf.includes('QUIT')) s.end();
      });
      s.on('close', () => resolve(buf));
    });
    expect(got).toBe('220 hello\r\nQUIT\r\n');
    const text = await scrape(px.port('metrics'));
    expect(
      sample(text, 'remora_tcp_connections_opened_total', { direction: 'inbound', protocol: 'opaque' }),
    ).toBe(1);
  });

  it('counts relayed bytes and returns the active gauge to 0', async () => {
    await until(() => px.engine.activeConnections() === 0, 'connections to close');
    const text = await scrape(px.port('metrics'));
    expect(sample(text, 'remora_tcp_connections_active', { direction: 'outbound' })).toBe(0);
    expect(
      sample(text, 'remora_tcp_bytes_total', { direction: 'outbound', flow: 'received' }),
    ).toBeGreaterThan(30);
    expect(sample(text, 'remora_tcp_bytes_total', { direction: 'outbound', flow: 'sent' })).toBeGreaterThan(
      30,
    );
  });

  it('closes a connection with no destination and logs why', async () => {
    const bare = await startEngine({});
    try {
      await new Promise<void>((resolve) => {
        const s = net.connect(bare.port('outbound'), '127.0.0.1');
        s.on('close', () => resolve());
        s.on('error', () => undefined);
      });
      const line = bare.logs.find((l) => l.event === 'no_target');
      expect(line?.code).toBe('RMR_NO_TARGET');
      expect(String(line?.msg)).toContain('no outbound target is configured');
    } finally {
      await bare.engine.close();
    }
  });
});
