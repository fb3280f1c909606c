/**
 * Rewritten app probes (REMORA_APP_PROBES, format from the injector: keys are the
 * /app-health/<container>/<kind> paths) run against real servers started here.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { ConfigError } from '../../../proxy/src/errors.js';
import { parseAppProbes, runProbe } from '../../../proxy/src/supervisor/probes.js';
import { get, startSupervisor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

const servers: { close(): void }[] = [];
let httpPort = 0;
let silentPort = 0;
let grpcPort = 0;
let closedPort = 0;
let grpcStatus = 1;
let sup: RunningSupervisor | undefined;

function listen(s: net.Server): Promise<number> {
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
}

beforeAll(async () => {
  const app = http.createServer((req, res) => {
    if (req.url === '/healthz' && req.headers['x-probe'] === 'yes') res.writeHead(200).end('ok');
    else if (req.url === '/healthz') res.writeHead(401).end('no header');
    else res.writeHead(500).end('broken');
  });
  httpPort = await listen(app);
  servers.push({ close: () => (app.closeAllConnections(), app.close()) });
  const silent = net.createServer(() => undefined); // accepts, never answers
  silentPort = await listen(silent);
  servers.push({ close: () => silent.close() });
  const grpc = http2.createServer();
  grpc.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      expect(headers[':path']).toBe('/grpc.health.v1.Health/Check');
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, grpcStatus]));
    });
  });
  grpcPort = await listen(grpc as unknown as net.Server);
  servers.push({ close: () => grpc.close() });
  const gone = net.createServer();
  closedPort = await listen(gone);
  gone.close();
});
afterAll(() => servers.forEach((s) => s.close()));
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

describe('REMORA_APP_PROBES parsing', () => {
  it('accepts the injector format and freezes it', () => {
    const m = parseAppProbes(
      ENV.appProbes,
      JSON.stringify({
        '/app-health/web/readyz': {
          kind: 'http',
          port: 8080,
          path: '/ready',
          scheme: 'HTTP',
          headers: [{ name: 'X-A', value: 'b' }],
          timeoutSeconds: 2,
        },
        '/app-health/web/livez': { kind: 'tcp', port: 8080, timeoutSeconds: 1 },
        '/app-health/grpc-app/startupz': { kind: 'grpc', port: 9090, service: 'x', timeoutSeconds: 1 },
      }),
    );
    expect([...m.keys()].sort()).toEqual([
      '/app-health/grpc-app/startupz',
      '/app-health/web/livez',
      '/app-health/web/readyz',
    ]);
    expect(Object.isFrozen(m.get('/app-health/web/livez'))).toBe(true);
    expect(parseAppProbes(ENV.appProbes, undefined).size).toBe(0);
  });

  it('lists every problem in one ConfigError', () => {
    const bad = JSON.stringify({
      '/app-health/web/healthz': { kind: 'tcp', port: 1 },
      '/app-health/web/readyz': { kind: 'exec', port: 1 },
      '/app-health/web/livez': {
        kind: 'http',
        port: 70000,
        path: 'x',
        headers: [{ name: 'bad name', value: 'v' }],
      },
      '/app-health/web/startupz': { kind: 'tcp', port: 80, timeoutSeconds: -1 },
    });
    let err: unknown;
    try {
      parseAppProbes(ENV.appProbes, bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).errors.join('\n');
    expect(text).toMatch(/"\/app-health\/web\/healthz" is not/);
    expect(text).toMatch(/kind: must be http, tcp or grpc/);
    expect(text).toMatch(/port: not a port/);
    expect(text).toMatch(/path: must start with/);
    expect(text).toMatch(/headers: must be a list/);
    expect(text).toMatch(/timeoutSeconds: not a positive number/);
    expect(() => parseAppProbes(ENV.appProbes, '{')).toThrow(/not valid JSON/);
    expect(() => parseAppProbes(ENV.appProbes, '[]')).toThrow(/must be a JSON object/);
  });
});

describe('running app probes against real servers', () => {
  it('httpGet: passes headers and returns the app status; connection refused and timeouts are 503', async () => {
    expect(
      await runProbe({
        kind: 'http',
        port: httpPort,
        path: '/healthz',
        scheme: 'HTTP',
        headers: [{ name: 'X-Probe', value: 'yes' }],
        timeoutSeconds: 1,
      }),
    ).toMatchObject({ status: 200 });
    expect(
      await runProbe({ kind: 'http', port: httpPort, path: '/healthz', scheme: 'HTTP', timeoutSeconds: 1 }),
    ).toMatchObject({ status: 401 });
    expect(
      await runProbe({ kind: 'http', port: httpPort, path: '/other', scheme: 'HTTP', timeoutSeconds: 1 }),
    ).toMatchObject({ status: 500 });
    expect(
      (await runProbe({ kind: 'http', port: closedPort, path: '/', scheme: 'HTTP', timeoutSeconds: 1 }))
        .status,
    ).toBe(503);
    const slow = await runProbe({
      kind: 'http',
      port: silentPort,
      path: '/',
      scheme: 'HTTP',
      timeoutSeconds: 0.2,
    });
    expect(slow).toMatchObject({ status: 503 });
    expect(slow.detail).toMatch(/no answer within 0.2s/);
  });

  it('tcpSocket: 200 when the port accepts, 503 when refused', async () => {
    expect((await runProbe({ kind: 'tcp', port: silentPort, timeoutSeconds: 1 })).status).toBe(200);
    expect((await runProbe({ kind: 'tcp', port: closedPort, timeoutSeconds: 1 })).status).toBe(503);
  });

  it('grpc health: SERVING is 200, NOT_SERVING is 503', async () => {
    grpcStatus = 1;
    expect(await runProbe({ kind: 'grpc', port: grpcPort, timeoutSeconds: 1 })).toMatchObject({
      status: 200,
      detail: 'SERVING',
    });
    grpcStatus = 2;
    expect((await runProbe({ kind: 'grpc', port: grpcPort, service: 'svc', timeoutSeconds: 1 })).status).toBe(
      503,
    );
    expect((await runProbe({ kind: 'grpc', port: closedPort, timeoutSeconds: 1 })).status).toBe(503);
  });

  it('the supervisor answers /app-health/<container>/<kind> with the app’s real status (fixture engine)', async () => {
    sup = await startSupervisor({
      env: {
        [ENV.appProbes]: JSON.stringify({
          '/app-health/web/readyz': {
            kind: 'http',
            port: httpPort,
            path: '/healthz',
            scheme: 'HTTP',
            headers: [{ name: 'x-probe', value: 'yes' }],
            timeoutSeconds: 1,
          },
          '/app-health/web/livez': {
            kind: 'http',
            port: httpPort,
            path: '/broken',
            scheme: 'HTTP',
            timeoutSeconds: 1,
          },
          '/app-health/web/startupz': { kind: 'tcp', port: closedPort, timeoutSeconds: 1 },
        }),
      },
    });
    expect((await get(sup.ports.health, '/app-health/web/readyz')).status).toBe(200);
    expect((await get(sup.ports.health, '/app-health/web/livez')).status).toBe(500);
    expect((await get(sup.ports.health, '/app-health/web/startupz')).status).toBe(503);
    expect((await get(sup.ports.health, '/app-health/other/readyz')).status).toBe(404);
  });
});
