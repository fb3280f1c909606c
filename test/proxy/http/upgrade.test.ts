/**
 * Upgrade requests (WebSocket, h2c) through a real engine on loopback, raw sockets in and bytes
 * out, built like main.ts builds it (assembleEngine: policy, telemetry; no CA, explicit mode):
 * the caller's identity header never reaches the app in any spelling on any path, `Upgrade: h2c`
 * never turns into a raw tunnel, and an upgrade is rate limited, timed out and traced like any
 * request. Over the mesh tunnel: test/proxy/tunnel/mesh.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleEngine } from '../../../proxy/src/assemble.js';
import type { Assembled } from '../../../proxy/src/assemble.js';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV, OTEL_ENV } from '../../../proxy/src/contract.js';
import { SPAN_KIND, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import {
  ANY_PEER_IDENTITY_SPELLING as ANY_SPELLING,
  PEER_IDENTITY_SPELLINGS,
  rawExchange,
  sample,
  scrape,
  startBackend,
  until,
} from '../harness.js';
import type { Backend } from '../harness.js';
import { LOOPBACK, capturingLogger } from '../policy/distribution-helpers.js';

let dir: string;
let backend: Backend;
/** accepts connections and never answers */
let silent: net.Server;
let silentPort: number;
let silentAccepted = 0;
const running: Assembled[] = [];

interface Proxy {
  readonly built: Assembled;
  readonly logs: Record<string, unknown>[];
  port(name: 'inbound' | 'outbound' | 'metrics'): number;
}

async function startProxy(env: Record<string, string>): Promise<Proxy> {
  const config = parseConfig({ ...LOOPBACK, ...env });
  const { log, lines } = capturingLogger();
  const built = await assembleEngine(config, log);
  await built.engine.start();
  running.push(built);
  return {
    built,
    logs: lines,
    port: (name) => {
      const a = built.engine.addresses()[name];
      if (a === undefined) throw new Error(`no ${name} listener`);
      return a.port;
    },
  };
}

/** A policy file with one inbound section on `ports`; `section`: its further YAML lines. */
function policyFile(name: string, ports: readonly number[], section: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: remora.dev/v1\nkind: PolicySet\npolicies:\n  - name: ws\n    inbound:\n` +
      `      - ports: [${ports.join(', ')}]\n${section}`,
  );
  return file;
}

/** Engine options: the policy file, every inbound connection to `port`. */
const policyAndTarget = (file: string, port: number): Record<string, string> => ({
  [ENV.policyFile]: file,
  [ENV.inboundTarget]: `127.0.0.1:${port}`,
});

const wsHead = (path: string, extra = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-upgrade-'));
  backend = await startBackend();
  // Reads (so it sees the proxy close the connection) and never answers.
  silent = net.createServer((s) => {
    silentAccepted += 1;
    s.on('error', () => undefined).resume();
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentPort = (silent.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const b of running) {
    await b.engine.close();
    await b.shutdown();
  }
  await backend.close();
  await new Promise<void>((r) => silent.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

describe('the peer identity header (no CA, explicit mode)', () => {
  let p: Proxy;
  beforeAll(async () => {
    p = await startProxy({
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.outboundTarget]: `127.0.0.1:${backend.port}`,
    });
  });

  for (const direction of ['inbound', 'outbound'] as const) {
    for (const spelling of PEER_IDENTITY_SPELLINGS) {
      it(`a client-supplied ${spelling} never reaches the app (${direction}, plain request)`, async () => {
        const before = backend.received.length;
        const marker = `plain-${direction}-${spelling}`;
        const out = await rawExchange(
          p.port(direction),
          `GET /who HTTP/1.1\r\nHost: app\r\n${spelling}: spiffe://forged/ns/x/sa/admin\r\n` +
            `x-marker: ${marker}\r\nConnection: close\r\n\r\n`,
        );
        expect(out).toMatch(/^HTTP\/1\.1 200 /);
        const got = backend.received.slice(before);
        expect(got.map((r) => r.headers['x-marker'])).toEqual([marker]);
        expect(got[0]?.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => ANY_SPELLING.test(n))).toEqual(
          [],
        );
      });

      it(`a client-supplied ${spelling} never reaches the app (${direction}, Upgrade request)`, async () => {
        const before = backend.received.length;
        const marker = `upgrade-${direction}-${spelling}`;
        const out = await rawExchange(
          p.port(direction),
          wsHead('/ws', `${spelling}: spiffe://forged/ns/x/sa/admin\r\nx-marker: ${marker}\r\n`) + 'frame',
          500,
        );
        expect(out).toMatch(/^HTTP\/1\.1 101 /);
        expect(out.endsWith('frame')).toBe(true);
        const got = backend.received.slice(before);
        expect(got.map((r) => r.headers['x-marker'])).toEqual([marker]);
        expect(got[0]?.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => ANY_SPELLING.test(n))).toEqual(
          [],
        );
      });
    }
  }
});

describe('Upgrade: h2c (the h2c smuggling pattern)', () => {
  let p: Proxy;
  beforeAll(async () => {
    p = await startProxy({
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.outboundTarget]: `127.0.0.1:${backend.port}`,
    });
  });

  const h2cHead = (path: string, upgrade = 'h2c', extra = ''): string =>
    `GET ${path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: ${upgrade}\r\n` +
    `HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n${extra}\r\n`;
  // What a smuggler sends once it believes it has a raw HTTP/2 connection to the app.
  const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

  for (const direction of ['inbound', 'outbound'] as const) {
    for (const upgrade of ['h2c', 'H2C', 'websocket, h2c']) {
      it(`an h2c upgrade never yields a raw tunnel (${direction}, Upgrade: ${upgrade}): served as plain HTTP/1.1, then closed`, async () => {
        const before = backend.received.length;
        const out = await rawExchange(p.port(direction), h2cHead('/h2c') + PREFACE);
        // The backend of this test answers 101 to any upgrade it is asked for: it never was.
        expect(out).toMatch(/^HTTP\/1\.1 200 /);
        expect(out).not.toMatch(/ 101 /);
        expect(out.toLowerCase()).toContain('connection: close');
        expect(out).toContain('hello world\n');
        const got = backend.received.slice(before);
        expect(got.map((r) => r.url)).toEqual(['/h2c']);
        expect(got[0]?.headers.upgrade).toBeUndefined();
        expect(got[0]?.headers['http2-settings']).toBeUndefined();
        // The preface was never relayed: no second request, no raw bytes.
        expect(backend.received.length).toBe(before + 1);
      });
    }
  }

  it('an h2c upgrade with a body is refused with 400 (the parser stopped at its head)', async () => {
    const before = backend.received.length;
    const out = await rawExchange(
      p.port('inbound'),
      h2cHead('/h2c-body', 'h2c', 'Content-Length: 5\r\n') + 'hello' + PREFACE,
    );
    expect(out).toMatch(/^HTTP\/1\.1 400 /);
    expect(out).toContain('x-remora-error: RMR_BAD_REQUEST');
    expect(backend.received.length).toBe(before);
  });

  it('Upgrade: h2c without Connection: upgrade is a plain request without the Upgrade field', async () => {
    const before = backend.received.length;
    const out = await rawExchange(
      p.port('inbound'),
      'GET /h2c-plain HTTP/1.1\r\nHost: app\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(backend.received.slice(before).map((r) => [r.url, r.headers.upgrade])).toEqual([
      ['/h2c-plain', undefined],
    ]);
  });
});

describe('policy and telemetry apply to an upgrade like to any request', () => {
  it('a rate-limited upgrade gets 429 with Retry-After, and never reaches the app', async () => {
    const file = policyFile(
      'ratelimit',
      [backend.port],
      '        rateLimit: { requestsPerSecond: 0.001, burst: 1, per: global }\n',
    );
    const p = await startProxy(policyAndTarget(file, backend.port));
    const before = backend.received.length;
    const first = await rawExchange(p.port('inbound'), wsHead('/ws/1'), 500);
    expect(first).toMatch(/^HTTP\/1\.1 101 /);
    const second = await rawExchange(p.port('inbound'), wsHead('/ws/2') + 'frame');
    expect(second).toMatch(/^HTTP\/1\.1 429 /);
    expect(second).toContain('x-remora-error: RMR_RATE_LIMITED');
    expect(second.toLowerCase()).toMatch(/retry-after: \d+/);
    expect(second).not.toContain('frame');
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/ws/1']);
    const m = await scrape(p.port('metrics'));
    expect(sample(m, 'remora_requests_total', { direction: 'inbound', status_code: '429' })).toBe(1);
  });

  it('a refused upgrade whose client sends a megabyte of frames at once still reads the whole 429; one that keeps sending is closed anyway', async () => {
    const file = policyFile(
      'ratelimit-flood',
      [backend.port],
      '        rateLimit: { requestsPerSecond: 0.001, burst: 1, per: global }\n',
    );
    const p = await startProxy(policyAndTarget(file, backend.port));
    expect(await rawExchange(p.port('inbound'), wsHead('/ws/spend'), 500)).toMatch(/^HTTP\/1\.1 101 /);
    const flood = await rawExchange(
      p.port('inbound'),
      Buffer.concat([Buffer.from(wsHead('/ws/flood')), Buffer.alloc(1 << 20, 0x61)]),
      10_000,
    );
    expect(flood).toMatch(/^HTTP\/1\.1 429 /);
    expect(flood).toContain('rate limited: retry after');
    // A client that never stops sending (one byte every 50 ms) and never closes its side (half
    // open) is closed by the proxy after a fixed bound.
    const closed = await new Promise<string>((resolve) => {
      let got = '';
      const s = net.connect({ port: p.port('inbound'), host: '127.0.0.1', allowHalfOpen: true }, () =>
        s.write(wsHead('/ws/trickle')),
      );
      const t = setInterval(() => s.write('x'), 50);
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(t);
        resolve(got);
      });
    });
    expect(closed).toMatch(/^HTTP\/1\.1 429 /);
  }, 20_000);

  it('an upgrade whose upstream never answers gets 504 per the route timeout; one that got its 101 outlives it', async () => {
    const file = policyFile(
      'timeout',
      [silentPort, backend.port],
      '        routes:\n          - match: { paths: [{ prefix: / }] }\n            timeoutMs: 200\n',
    );
    const hung = await startProxy(policyAndTarget(file, silentPort));
    const out = await rawExchange(hung.port('inbound'), wsHead('/ws/hung'), 10_000);
    expect(out).toMatch(/^HTTP\/1\.1 504 /);
    expect(out).toContain('x-remora-error: RMR_REQUEST_TIMEOUT');
    expect(hung.logs.some((l) => l.event === 'request_timeout')).toBe(true);

    // The timeout covers getting the 101: the WebSocket itself lives on past it.
    const ok = await startProxy(policyAndTarget(file, backend.port));
    const echoed = await new Promise<string>((resolve, reject) => {
      let buf = '';
      let scheduled = false;
      const s = net.connect(ok.port('inbound'), '127.0.0.1', () => s.write(wsHead('/ws/long')));
      s.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        if (!scheduled && buf.includes('\r\n\r\n')) {
          scheduled = true;
          // Three times the route timeout after the 101.
          setTimeout(() => s.write('late-frame'), 600).unref();
        }
        if (buf.endsWith('late-frame')) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on('error', reject);
      s.on('close', () => resolve(buf));
    });
    expect(echoed).toMatch(/^HTTP\/1\.1 101 /);
    expect(echoed.endsWith('late-frame')).toBe(true);
  });

  it("an outbound upgrade goes through the destination's circuit breaker: over maxRequests it gets 503 RMR_CIRCUIT_OPEN, never sent", async () => {
    const file = join(dir, 'breaker.yaml');
    writeFileSync(
      file,
      `apiVersion: remora.dev/v1\nkind: PolicySet\npolicies:\n  - name: ws\n    outbound:\n` +
        `      - destinations: ["127.0.0.1:${silentPort}"]\n        circuitBreaker: { maxRequests: 1 }\n`,
    );
    const p = await startProxy({ [ENV.policyFile]: file, [ENV.outboundTarget]: `127.0.0.1:${silentPort}` });
    const accepted = silentAccepted;
    // The first upgrade waits for its 101 (the upstream never answers): one request in flight.
    const first = net.connect(p.port('outbound'), '127.0.0.1', () => first.write(wsHead('/ws/first')));
    first.on('error', () => undefined);
    try {
      await until(() => silentAccepted > accepted, 'the first upgrade reached the upstream');
      const second = await rawExchange(p.port('outbound'), wsHead('/ws/second'));
      expect(second).toMatch(/^HTTP\/1\.1 503 /);
      expect(second).toContain('x-remora-error: RMR_CIRCUIT_OPEN');
      expect(silentAccepted).toBe(accepted + 1);
      const m = await scrape(p.port('metrics'));
      expect(sample(m, 'remora_circuit_open_total', { direction: 'outbound', limit: 'max_requests' })).toBe(
        1,
      );
    } finally {
      first.destroy();
    }
  });

  it('the upgrade produces a server span (inbound) and a client span (outbound), status 101', async () => {
    const rx = await startOtlpReceiver();
    try {
      const p = await startProxy({
        [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
        [ENV.outboundTarget]: `127.0.0.1:${backend.port}`,
        [OTEL_ENV.endpoint]: rx.url,
        [OTEL_ENV.bspScheduleDelay]: '50',
      });
      const trace = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
      for (const direction of ['inbound', 'outbound'] as const) {
        const out = await rawExchange(
          p.port(direction),
          wsHead(`/ws/traced-${direction}`, `traceparent: 00-${trace}-1111111111111111-01\r\n`),
          500,
        );
        expect(out).toMatch(/^HTTP\/1\.1 101 /);
      }
      const spans = await rx.waitFor((s) => s.filter((x) => x.traceId === trace).length >= 2);
      const mine = spans.filter((x) => x.traceId === trace);
      expect(mine.map((s) => s.kind).sort()).toEqual([SPAN_KIND.server, SPAN_KIND.client].sort());
      for (const s of mine) {
        expect(s.parentSpanId).toBe('1111111111111111');
        expect(s.attributes['http.response.status_code']).toBe(101);
      }
    } finally {
      await rx.close();
    }
  });
});
