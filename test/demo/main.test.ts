/**
 * `npm run demo` end to end: the real app, remora-proxy and (as root) remora-init in real
 * network namespaces. Asserts what the demo shows (every request counted by the proxy, the
 * metrics and access log printed) and that it leaves no process or namespace behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite } from '../helpers/env.js';
import { runScript, stillRunning } from '../helpers/scripts.js';
import type { ScriptExit } from '../helpers/scripts.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'demo/dist/main.js');

function demo(args: string[], watch?: Parameters<typeof runScript>[3]): Promise<ScriptExit> {
  return runScript(MAIN, args, ROOT, watch);
}

/** Processes named in the demo's cleanup line that still exist. */
function survivors(stdout: string): string[] {
  return stillRunning(/stopped\/removed: (.*)/.exec(stdout)?.[1] ?? '');
}

function demoNamespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('remora-demo-'));
}

function expectFullDemo(r: ScriptExit, mode: RegExp): void {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  expect(r.stdout).toMatch(mode);
  for (const line of [
    /GET {2}\/\s+→ 200/,
    /POST \/orders\s+→ 201/,
    /GET {2}\/missing\s+→ 404/,
    /GET {2}\/fail\s+→ 500/,
  ]) {
    expect(r.stdout).toMatch(line);
  }
  expect(r.stdout).toMatch(/^ {2}remora_requests_total\{.*\} +\d+$/m);
  expect(r.stdout).not.toMatch(/_bucket\{/);
  const access = r.stdout.split('\n').filter((l) => l.startsWith('  {') && l.includes('"log":"access"'));
  expect(access.length).toBeGreaterThanOrEqual(10);
  expect(access.some((l) => l.includes('"status":500'))).toBe(true);
  // Telemetry: the traced request's server span came back through OTLP, child of the caller's span.
  expect(r.stdout).toMatch(/^ {4}└─ demo-app server GET \/trace 200 [\d.]+ ms$/m);
  expect(r.stdout).toMatch(
    /server span [0-9a-f]{16}: kind server, parent [0-9a-f]{16} = the caller span in the traceparent/,
  );
  expect(r.stdout).toMatch(
    /the app received traceparent 00-[0-9a-f]{32}-[0-9a-f]{16}-01: parent-id = the server span/,
  );
  // Supervisor: a kill -9 and an upgrade under steady traffic, nothing failed or refused.
  expect(r.stdout).toMatch(/kill -9 \d+ \(engine generation 1\)/);
  expect(r.stdout).toMatch(
    /serving again \d+ ms after the kill \(the first request sent after it was answered 200\)/,
  );
  expect(r.stdout).toMatch(/POST \/upgrade .* → ok true, generation 2 → 3/);
  expect(r.stdout).toMatch(/engine generation before 1, after the kill 2, after the upgrade 3/);
  expect(r.stdout).toMatch(/requests sent [1-9]\d*, failed 0, refused connections 0$/m);
  // mTLS: A's client span parents B's server span; each side saw the identity the CA gave the other.
  expect(r.stdout).toMatch(
    /└─ orders client GET \/trace 200 [\d.]+ ms\n {7}└─ items server GET \/trace 200 [\d.]+ ms/,
  );
  expect(r.stdout).toMatch(
    /B saw the caller as: +spiffe:\/\/cluster\.local\/ns\/demo\/sa\/orders \(server span/,
  );
  expect(r.stdout).toMatch(
    /app B received: +spiffe:\/\/cluster\.local\/ns\/demo\/sa\/orders \(the x-remora-peer-identity/,
  );
  expect(r.stdout).toMatch(/B's certificate shows: +URI:spiffe:\/\/cluster\.local\/ns\/demo\/sa\/items \(/);
  expect(r.stdout).toMatch(/without a client certificate B refused/);
  expect(r.stdout).toMatch(
    /remora_tls_handshake_failures_total\{direction="inbound",reason="no_client_cert"\} 1/,
  );
  expect(r.stdout).toMatch(/stopped\/removed: .*remora-injector-ca \(pid \d+\)/);
  expect(r.stdout).toMatch(/10 requests sent, remora-proxy counted 10 /);
  expect(r.stdout).toMatch(/every request went through remora-proxy/);
  expect(r.stdout).toMatch(/stopped\/removed: .*remora-proxy \(pid \d+\)/);
  expect(survivors(r.stdout)).toEqual([]);
  const dirs = [...r.stdout.matchAll(/dir (\/\S+remora-demo-\w+)/g)].map((m) => m[1] ?? '');
  expect(dirs.length, 'the token and CA directories are named in the cleanup line').toBe(2);
  expect(dirs.filter((d) => existsSync(d))).toEqual([]);
}

describe('npm run demo', () => {
  beforeAll(() => {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'demo'], {
      cwd: ROOT,
    });
  });

  it('explicit mode: the app behind the proxy on loopback, metrics, access log, trace, kill -9 + upgrade with 0 failed, mTLS identities, nothing left running', async () => {
    expectFullDemo(await demo(['--mode=explicit']), /mode: EXPLICIT on loopback/);
  }, 60_000);

  const noNetns = missingPrerequisite({ root: true, tools: ['ip', 'iptables-restore', 'setpriv'] });
  it.skipIf(noNetns !== undefined)(
    `namespaces mode: capture by remora-init, proxy as 1337, client in its own namespace, trace, kill -9 + upgrade, mesh on loopback; namespaces removed ${noNetns ?? ''}`,
    async () => {
      const r = await demo(['--mode=namespaces']);
      expectFullDemo(r, /mode: NAMESPACES/);
      expect(r.stdout).toMatch(/client calls http:\/\/10\.213\.\d+\.2:8080\//);
      expect(r.stdout).toMatch(/stopped\/removed: .*netns remora-demo-\w+-pod/);
      expect(demoNamespaces()).toEqual([]);
    },
    60_000,
  );

  it('cleans up on Ctrl-C (SIGINT) mid-run and exits 130', async () => {
    let sent = false;
    const r = await demo([], ({ stdout }, child) => {
      if (!sent && /── traffic/.test(stdout)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent, r.stdout + r.stderr).toBe(true);
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: cleaning up/);
    expect(r.stdout).toMatch(/stopped\/removed: .*remora-proxy \(pid \d+\)/);
    expect(survivors(r.stdout)).toEqual([]);
    if (process.getuid?.() === 0) expect(demoNamespaces()).toEqual([]);
  }, 60_000);

  it('cleans up on Ctrl-C right after the engine was killed (supervisor part) and exits 130', async () => {
    let sent = false;
    const r = await demo(['--mode=explicit'], ({ stdout }, child) => {
      if (!sent && /kill -9 \d+/.test(stdout)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent, r.stdout + r.stderr).toBe(true);
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.stdout).toMatch(/stopped\/removed: .*remora-proxy \(pid \d+\)/);
    expect(r.stdout).toMatch(/stopped\/removed: .*otlp-collector \(pid \d+\)/);
    expect(survivors(r.stdout)).toEqual([]);
  }, 60_000);

  it('cleans up on Ctrl-C during the mesh part (CA and both sidecars stopped) and exits 130', async () => {
    let sent = false;
    const r = await demo(['--mode=explicit'], ({ stdout }, child) => {
      if (!sent && /GET {2}\/trace through A/.test(stdout)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent, r.stdout + r.stderr).toBe(true);
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.stdout).toMatch(/stopped\/removed: .*remora-injector-ca \(pid \d+\)/);
    expect(r.stdout).toMatch(/stopped\/removed: .*remora-proxy-a \(pid \d+\)/);
    expect(r.stdout).toMatch(/stopped\/removed: .*remora-proxy-b \(pid \d+\)/);
    expect(survivors(r.stdout)).toEqual([]);
  }, 60_000);

  it('rejects an unknown flag with exit 2 and the usage', async () => {
    const r = await demo(['--mode=sidecarless']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown argument "--mode=sidecarless"/);
    expect(r.stderr).toMatch(/usage: npm run demo/);
  });
});
