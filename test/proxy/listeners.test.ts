import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../proxy/src/contract.js';
import { startBackend, startEngine } from './harness.js';
import type { Backend } from './harness.js';

let backend: Backend;
beforeAll(async () => {
  backend = await startBackend();
});
afterAll(async () => {
  await backend.close();
});

function body(port: number): Promise<string> {
  return new Promise((resolve, reject) =>
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve(b));
      })
      .on('error', reject),
  );
}

describe('listening sockets handed in from outside', () => {
  it('serves on a handed-in net.Server and leaves it open on close (the owner closes it)', async () => {
    const owner = net.createServer();
    await new Promise<void>((r) => owner.listen(0, '127.0.0.1', r));
    const port = (owner.address() as net.AddressInfo).port;
    const px = await startEngine({ [ENV.inboundTarget]: `127.0.0.1:${backend.port}` }, { inbound: owner });
    expect(px.port('inbound')).toBe(port);
    expect(await body(port)).toBe('hello world\n');
    await px.engine.close();
    expect(owner.listening).toBe(true);
    expect(owner.listenerCount('connection')).toBe(0);
    owner.close();
  });

  it('serves on an inherited listening fd in another process (the supervisor model)', async () => {
    const owner = net.createServer();
    await new Promise<void>((r) => owner.listen(0, '127.0.0.1', r));
    const port = (owner.address() as net.AddressInfo).port;
    const engineModule = fileURLToPath(new URL('../../proxy/dist/engine.js', import.meta.url));
    const configModule = fileURLToPath(new URL('../../proxy/dist/config/config.js', import.meta.url));
    const logModule = fileURLToPath(new URL('../../proxy/dist/log.js', import.meta.url));
    const script = `
      const { Engine } = await import(${JSON.stringify(engineModule)});
      const { parseConfig } = await import(${JSON.stringify(configModule)});
      const { createLogger } = await import(${JSON.stringify(logModule)});
      const config = parseConfig({ REMORA_BIND_HOST: '127.0.0.1', REMORA_INBOUND_PORT: '0', REMORA_OUTBOUND_PORT: '0',
        REMORA_ADMIN_PORT: '0', REMORA_HEALTH_PORT: '0', REMORA_METRICS_PORT: '0',
        REMORA_INBOUND_TARGET: '127.0.0.1:${backend.port}', REMORA_LOG_LEVEL: 'silent' });
      const engine = new Engine({ config, log: createLogger('silent'), listeners: { inbound: { fd: 3 } } });
      await engine.start();
      process.stdout.write('ready ' + engine.addresses().inbound.port + '\\n');
      process.stdin.on('end', () => engine.close().then(() => process.exit(0)));
      process.stdin.resume();`;
    const fd = (owner as unknown as { _handle: { fd: number } })._handle.fd;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['pipe', 'pipe', 'inherit', fd],
    });
    const { stdin, stdout } = child;
    if (stdin === null || stdout === null) throw new Error('no pipes to the child');
    try {
      const line = await new Promise<string>((resolve, reject) => {
        stdout.once('data', (c: Buffer) => resolve(c.toString()));
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
      });
      expect(line.trim()).toBe(`ready ${port}`);
      // Our copy stops accepting; the child's copy of the same socket serves.
      owner.close();
      expect(await body(port)).toBe('hello world\n');
    } finally {
      stdin.end();
      await new Promise((r) => child.once('exit', r));
    }
  });
});
