import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../proxy/src/contract.js';
import { startBackend, startEngine, until } from './harness.js';
import type { Backend } from './harness.js';

let backend: Backend;
beforeAll(async () => {
  backend = await startBackend();
});
afterAll(async () => {
  await backend.close();
});

function get(
  port: number,
  path: string,
  agent?: http.Agent,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: agent ?? false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(undefined);
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
  });
}

describe('control listeners', () => {
  it('health: ready and live; admin: /config without secrets; 404 and 405 elsewhere', async () => {
    const px = await startEngine({
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer s3cret',
    });
    try {
      expect((await get(px.port('health'), '/healthz/ready')).status).toBe(200);
      expect((await get(px.port('health'), '/healthz/live')).status).toBe(200);
      const cfg = await get(px.port('admin'), '/config');
      expect(cfg.status).toBe(200);
      const body = JSON.parse(cfg.body) as {
        config: Record<string, unknown>;
        state: string;
        listeners: Record<string, { port: number }>;
      };
      expect(body.config.inboundTarget).toEqual({ host: '127.0.0.1', port: backend.port });
      expect(body.state).toBe('serving');
      expect(body.listeners.inbound?.port).toBe(px.port('inbound'));
      expect(cfg.body).not.toContain('s3cret');
      expect((await get(px.port('admin'), '/nope')).status).toBe(404);
      const wrong = await new Promise<number>((resolve) =>
        http
          .request(
            { host: '127.0.0.1', port: px.port('admin'), path: '/config', method: 'DELETE' },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
          .end(),
      );
      expect(wrong).toBe(405);
      const metrics = await fetch(`http://127.0.0.1:${px.port('metrics')}/metrics`);
      expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    } finally {
      await px.engine.close();
    }
  });
});

describe('graceful drain', () => {
  it('stops accepting, turns readiness 503, closes idle keep-alive, finishes in-flight with Connection: close', async () => {
    const px = await startEngine({
      [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
      [ENV.drainSeconds]: '10',
    });
    const inbound = px.port('inbound');
    const health = px.port('health');
    // An idle keep-alive client connection.
    const idleAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await get(inbound, '/warm', idleAgent);
    const idleSocketClosed = new Promise<void>((resolve) => {
      const sockets = (idleAgent as unknown as { freeSockets: Record<string, net.Socket[]> }).freeSockets;
      const s = Object.values(sockets)[0]?.[0];
      if (s === undefined) throw new Error('no idle socket');
      s.once('close', () => resolve());
    });
    // A request in flight when the drain starts (/wait answers after 300 ms).
    const inflightAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const inflight = get(inbound, '/wait', inflightAgent);
    await until(() => backend.received.at(-1)?.url === '/wait', 'the in-flight request upstream');

    const drained = px.engine.drain();
    expect((await get(health, '/healthz/ready')).status).toBe(503);
    expect((await get(health, '/healthz/live')).status).toBe(200);
    expect(await connectError(inbound)).toBe('ECONNREFUSED');
    await idleSocketClosed;
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(r.body).toBe('waited\n');
    expect(r.headers.connection).toBe('close');
    await drained;
    expect(px.logs.some((l) => l.event === 'drain_done')).toBe(true);
    expect(px.logs.some((l) => l.event === 'drain_timeout')).toBe(false);
    expect(await connectError(health)).toBe('ECONNREFUSED');
    idleAgent.destroy();
    inflightAgent.destroy();
  });

  it('cuts what is left when the drain bound is reached', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const px = await startEngine({
      [ENV.outboundTarget]: `127.0.0.1:${(echo.address() as net.AddressInfo).port}`,
      [ENV.drainSeconds]: '0.3',
    });
    const s = net.connect(px.port('outbound'), '127.0.0.1');
    s.on('error', () => undefined);
    s.resume();
    s.write('SSH-2.0-never-ends\r\n');
    await until(() => px.engine.activeConnections() === 1, 'the relay to be up');
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    await px.engine.drain();
    await closed;
    expect(px.logs.find((l) => l.event === 'drain_timeout')?.connections).toBe(1);
    echo.close();
  });
});
