/**
 * Attacks on L7 policy (issue 10 items 4 and 5), each against a real engine on loopback built
 * from a real config with a real policy file (`REMORA_POLICY_FILE`), in front of a raw TCP
 * backend that records every byte it receives: what the policy denies must never get there, in
 * any spelling a backend would read as the denied path, nor as bytes the proxy relays without
 * parsing them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleEngine } from '../../../proxy/src/assemble.js';
import type { Assembled } from '../../../proxy/src/assemble.js';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { rawExchange } from '../harness.js';
import { LOOPBACK, capturingLogger } from './distribution-helpers.js';

/** A raw TCP backend: answers 200 once a head has arrived (any bytes), records everything. */
interface Raw {
  port: number;
  received(): string;
  close(): Promise<void>;
}

async function rawBackend(): Promise<Raw> {
  let all = '';
  const server = net.createServer((s) => {
    let mine = '';
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      all += d.toString('latin1');
      mine += d.toString('latin1');
      if (mine.includes('\r\n\r\n'))
        s.end('HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => all,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

let dir: string;
let app: Raw;
let other: Raw;
let built: Assembled;
let logs: Record<string, unknown>[];

/** Deny `/admin/` (prefix, as written by a user) and `/Secret/` case-insensitively on the app's
 *  port; the other port has no policy at all. */
function policy(port: number): string {
  return `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: app
    inbound:
      - ports: [${port}]
        authorization:
          rules:
            - name: no-admin
              action: deny
              request: { paths: [{ prefix: /admin/ }, { prefix: /secret/, ignoreCase: true }] }
`;
}

function port(name: 'inbound' | 'outbound'): number {
  const a = built.engine.addresses()[name];
  if (a === undefined) throw new Error(`no ${name} listener`);
  return a.port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-bypass-'));
  app = await rawBackend();
  other = await rawBackend();
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policy(app.port));
  const config = parseConfig({
    ...LOOPBACK,
    [ENV.policyFile]: file,
    [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
    [ENV.outboundTarget]: `127.0.0.1:${other.port}`,
    [ENV.detectTimeoutMs]: '200',
  });
  const c = capturingLogger();
  logs = c.lines;
  built = await assembleEngine(config, c.log);
  await built.engine.start();
  await built.whenReady();
});

afterAll(async () => {
  await built?.engine.close();
  await built?.shutdown();
  await app?.close();
  await other?.close();
  rmSync(dir, { recursive: true, force: true });
});

function get(target: string, listener: 'inbound' | 'outbound' = 'inbound'): Promise<string> {
  return rawExchange(
    port(listener),
    `GET ${target} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n`,
    3000,
  );
}

describe('paths match the way backends read them (a prefix deny on /admin/)', () => {
  it('the plain denied path is refused and an allowed one reaches the app (control)', async () => {
    const before = app.received().length;
    expect(await get('/admin/x')).toMatch(/^HTTP\/1\.1 403 /);
    expect(await get('/ok')).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.received().slice(before)).toMatch(/^GET \/ok HTTP\/1\.1\r\n/);
    expect(app.received()).not.toContain('/admin');
  });

  it.each([
    // Tomcat strips `;` parameters: it reads /admin/x
    ['/admin;jsessionid=1/x', 403],
    // ... and resolves `..;` as `..`
    ['/ok/..;/admin/x', 403],
    // servers that decode %2F before routing read /admin/x
    ['/admin%2fx', 400],
    ['/admin%2Fx', 400],
    ['/admin%5cx', 400],
    // a C server that decodes %00 ends the path there
    ['/admin/%00', 400],
    ['/ok%00/../admin/x', 400],
    // servers that take `\` for `/` read /admin/x
    ['/admin\\x', 400],
    // a fragment has no place in a request; a server that drops it reads /ok, one that does not
    // and resolves the dots reads /admin/x
    ['/ok#/../admin/x', 400],
    // bytes outside RFC 3986 and bad percent-encoding
    ['/admin/"x', 400],
    ['/adm%zzin/x', 400],
    ['/a{b}', 400],
    // normalized forms of the denied path
    ['/%61dmin/x', 403],
    ['//admin/x', 403],
    ['/ok/../admin/x', 403],
    ['/./admin/x', 403],
    ['/%2e%2e/admin/x', 403],
    ['http://app/admin/x', 403],
    ['http://app/admin%2Fx', 400],
    ['http://app\\admin/x', 400],
    // a case-insensitive rule for a case-insensitive app
    ['/SECRET/x', 403],
    ['/sEcReT/x', 403],
  ])('%s: %i, and nothing of it reaches the app (regression: it reached the app)', async (target, status) => {
    const before = app.received().length;
    const got = await get(target);
    expect(got.slice(0, 12)).toBe(`HTTP/1.1 ${status}`);
    if (status === 400) expect(got.toLowerCase()).toContain('connection: close');
    // a control request: once it arrived, anything the attack made the proxy send has too
    expect(await get('/control')).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.received().slice(before)).toMatch(/^GET \/control HTTP\/1\.1\r\n/);
  });

  it('the app receives the normalized path the policy matched (dots resolved, slashes merged, unreserved decoded); `;` parameters and the query as sent', async () => {
    const before = app.received().length;
    expect(await get('/a/./b/../%7Ec//d;v=1?q=%2F#x')).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.received().slice(before)).toMatch(/^GET \/a\/~c\/d;v=1\?q=%2F#x HTTP\/1\.1\r\n/);
  });

  it('case-sensitive rules stay case-sensitive (/Admin/ is another path to them)', async () => {
    expect(await get('/Admin/x')).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('a WebSocket upgrade gets the same target checks (400 for an encoded slash)', async () => {
    const got = await rawExchange(
      port('inbound'),
      'GET /admin%2Fx HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
      3000,
    );
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
  });
});

describe('non-HTTP bytes do not slip past L7 policy', () => {
  it.each([
    ['a lower-case method', 'get /admin/x HTTP/1.1\r\nHost: app\r\n\r\n', 'reject'],
    ['an unknown method', 'FOO /admin/x HTTP/1.1\r\nHost: app\r\n\r\n', 'reject'],
    ['a method with a control byte', 'bad_method\x01 /admin/x HTTP/1.1\r\nHost: app\r\n\r\n', 'reject'],
    ['binary bytes', '\x00\x01\x02\xff/admin/x\r\n\r\n', 'close'],
    ['a TLS ClientHello', '\x16\x03\x01\x00\x05hello', 'close'],
  ])(
    'on a port governed by an L7 rule, %s is refused (400 or closed), never relayed (regression: relayed as opaque TCP)',
    async (_what, bytes, answer) => {
      const before = app.received().length;
      const got = await rawExchange(port('inbound'), Buffer.from(bytes, 'latin1'), 3000);
      if (answer === 'reject') expect(got).toMatch(/^HTTP\/1\.1 400 [^]*x-remora-error: RMR_BAD_REQUEST/);
      else expect(got).toBe('');
      expect(await get('/control')).toMatch(/^HTTP\/1\.1 200 /);
      expect(app.received().slice(before)).toMatch(/^GET \/control HTTP\/1\.1\r\n/);
      expect(logs.findLast((l) => l.event === 'not_http')).toMatchObject({
        direction: 'inbound',
        strict: true,
      });
    },
  );

  it('on a port governed by an L7 rule, HTTP/2 is served by the HTTP/2 stage under the same rules, never relayed (regression: relayed as opaque TCP)', async () => {
    const before = app.received().length;
    const session = http2.connect(`http://127.0.0.1:${port('inbound')}`);
    session.on('error', () => undefined);
    const stream = session.request({ ':method': 'GET', ':path': '/admin/x' });
    stream.on('error', () => undefined);
    stream.end();
    const head = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('response', resolve));
    stream.resume();
    session.close();
    expect(head[':status']).toBe(403);
    expect(head['x-remora-error']).toBe('RMR_POLICY_DENIED');
    // Not a byte of the preface or the frames reached the backend.
    expect(app.received().slice(before)).toBe('');
  });

  it('on a governed port a silent client is not relayed after the detection timeout: its late request still meets the policy', async () => {
    const before = app.received().length;
    const got = await new Promise<string>((resolve) => {
      let out = '';
      const s = net.connect(port('inbound'), '127.0.0.1');
      s.on('data', (d: Buffer) => (out += d.toString('latin1')));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
      // Past the 200 ms detection timeout (the proxy decides first; this only waits for it).
      setTimeout(() => s.write('GET /admin/x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n'), 600);
    });
    expect(got).toMatch(/^HTTP\/1\.1 403 /);
    expect(app.received().slice(before)).toBe('');
  });

  it('on a port without policy (undeclared), a lower-case method stays opaque TCP, but a control byte in the method is still refused', async () => {
    // The outbound listener goes to `other`, a port no policy governs.
    const before = other.received().length;
    expect(await rawExchange(port('outbound'), 'get /x HTTP/1.1\r\nHost: o\r\n\r\n', 3000)).toMatch(
      /^HTTP\/1\.1 200 /,
    );
    expect(other.received().slice(before)).toMatch(/^get \/x HTTP\/1\.1\r\n/);
    const mid = other.received().length;
    expect(
      await rawExchange(port('outbound'), 'bad_method\x01 /x HTTP/1.1\r\nHost: o\r\n\r\n', 3000),
    ).toMatch(/^HTTP\/1\.1 400 /);
    expect(await get('/control', 'outbound')).toMatch(/^HTTP\/1\.1 200 /);
    expect(other.received().slice(mid)).toMatch(/^GET \/control HTTP\/1\.1\r\n/);
  });

  it.each([
    [
      'a method with a control byte is closed, nothing relayed',
      'bad_method\x01 /x HTTP/1.1\r\nHost: o\r\n\r\n',
      false,
    ],
    ['the same split over two writes is closed before the line completes', 'bad_method\x01', false],
    [
      'a lower-case method is relayed (opaque, as server-speaks-first traffic is)',
      'get /x HTTP/1.1\r\nHost: o\r\n\r\n',
      true,
    ],
  ])(
    'on a port without policy, after a client stayed silent past the detection timeout: %s (regression: relayed unparsed)',
    async (_what, bytes, relayed) => {
      const before = other.received().length;
      const got = await new Promise<string>((resolve) => {
        let out = '';
        const s = net.connect(port('outbound'), '127.0.0.1');
        s.on('data', (d: Buffer) => (out += d.toString('latin1')));
        s.on('close', () => resolve(out));
        s.on('error', () => resolve(out));
        // Past the 200 ms detection timeout (if the proxy decides later, the bytes are sniffed
        // as usual and the answer is the same).
        setTimeout(() => {
          s.write(bytes);
          if (!relayed && !bytes.includes('\r\n')) setTimeout(() => s.write(' /x HTTP/1.1\r\n\r\n'), 100);
        }, 600);
      });
      if (relayed) {
        expect(got).toMatch(/^HTTP\/1\.1 200 /);
        expect(other.received().slice(before)).toBe(bytes);
      } else {
        expect(got).not.toMatch(/200 OK/);
        expect(await get('/control', 'outbound')).toMatch(/^HTTP\/1\.1 200 /);
        const after = other.received().slice(before);
        expect(after).not.toMatch(/HTTP\/1\.1\r\nHost: o/);
        expect(after).not.toContain(' /x HTTP');
      }
    },
  );
});
