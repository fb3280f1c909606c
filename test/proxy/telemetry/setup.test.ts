// Telemetry as installed by the proxy: opaque TCP connections get their access-log line, and bad
// OTEL_* values stop the start with every error listed, before any port is bound.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ENV, OTEL_ENV } from '../../../proxy/src/contract.js';
import { PROXY_BIN, startSidecar } from './sidecar.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('telemetry installed in remora-proxy', () => {
  it('an opaque TCP connection gets one access-log line with bytes each way', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as AddressInfo).port;
    const proxy = await startSidecar({ [ENV.inboundTarget]: `127.0.0.1:${port}` });
    try {
      const payload = 'not http at all, just bytes\n';
      const got = await new Promise<string>((resolve, reject) => {
        const c = net.connect(proxy.ports.inbound, '127.0.0.1', () => c.write(payload));
        let data = '';
        c.setEncoding('utf8').on('data', (d: string) => {
          data += d;
          if (data.length >= payload.length) c.end();
        });
        c.on('close', () => resolve(data));
        c.on('error', reject);
      });
      expect(got).toBe(payload);
      const end = Date.now() + 5000;
      while (!proxy.logs().some((l) => l.log === 'access' && l.type === 'tcp') && Date.now() < end)
        await sleep(50);
      const line = proxy.logs().find((l) => l.log === 'access' && l.type === 'tcp');
      expect(line).toMatchObject({
        direction: 'inbound',
        bytes_received: payload.length,
        bytes_sent: payload.length,
        upstream: `127.0.0.1:${port}`,
      });
      expect(line?.duration_ms).toEqual(expect.any(Number));
    } finally {
      await proxy.stop();
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });

  it('bad OTEL_* values: the proxy exits non-zero before binding, naming every variable and value', () => {
    const r = spawnSync(process.execPath, [PROXY_BIN], {
      env: {
        PATH: process.env.PATH ?? '',
        [ENV.bindHost]: '127.0.0.1',
        [OTEL_ENV.endpoint]: 'collector:4318',
        [OTEL_ENV.bspMaxQueueSize]: 'lots',
        [OTEL_ENV.sampler]: 'sometimes',
      },
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(r.signal).toBeNull();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      'OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL, got "collector:4318"',
    );
    expect(r.stderr).toContain('OTEL_BSP_MAX_QUEUE_SIZE: expected a positive integer, got "lots"');
    expect(r.stderr).toContain('OTEL_TRACES_SAMPLER: unsupported sampler "sometimes"');
  });
});
