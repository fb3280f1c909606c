import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ENV } from '../../proxy/src/contract.js';

// The engine alone (proxy/src/main.ts), without the supervisor that bin/remora-proxy runs.
const mainModule = fileURLToPath(new URL('../../proxy/dist/main.js', import.meta.url));
const script = `import(${JSON.stringify(mainModule)}).then((m) => m.main()).then((code) => process.exit(code));`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  env: Record<string, string>,
  during?: (child: ReturnType<typeof spawn>, out: () => string) => Promise<void>,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    if (during) during(child, () => stdout).catch(reject);
  });
}

describe('engine main (without the supervisor)', () => {
  it('exits non-zero listing every config error before binding any port', async () => {
    const r = await run({
      [ENV.inboundPort]: 'abc',
      [ENV.outboundTarget]: 'nope',
      [ENV.logLevel]: 'chatty',
      [ENV.configFile]: '/nonexistent/remora.json',
    });
    expect(r.code).toBe(2);
    for (const name of [ENV.inboundPort, ENV.outboundTarget, ENV.logLevel, ENV.configFile])
      expect(r.stderr).toContain(name);
    const first = JSON.parse(r.stderr.split('\n')[0] ?? '') as { event: string; errors: string[] };
    expect(first.event).toBe('config_invalid');
    expect(first.errors).toHaveLength(4);
    // Nothing was started: no "listening" line, nothing on stdout at all.
    expect(r.stdout).toBe('');
  });

  it('serves, reports ready, and drains to exit 0 on SIGTERM', async () => {
    const r = await run(
      {
        [ENV.bindHost]: '127.0.0.1',
        [ENV.inboundPort]: '0',
        [ENV.outboundPort]: '0',
        [ENV.adminPort]: '0',
        [ENV.healthPort]: '0',
        [ENV.metricsPort]: '0',
        [ENV.inboundTarget]: '127.0.0.1:9',
      },
      async (child, out) => {
        while (!out().includes('"event":"listening"')) await new Promise((res) => setTimeout(res, 20));
        const line = out()
          .split('\n')
          .find((l) => l.includes('"event":"listening"')) as string;
        const { listeners } = JSON.parse(line) as { listeners: Record<string, { port: number }> };
        const ready = await fetch(`http://127.0.0.1:${listeners.health?.port}/healthz/ready`);
        expect(ready.status).toBe(200);
        child.kill('SIGTERM');
      },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"event":"drain_done"');
  });
});
