/**
 * The injector's engine routes on its real CA listener (docs/upgrades.md): bundles by digest
 * only to clients with a workload certificate of the mesh, 404 for anything not announced (no
 * path ever comes from the request), the lease bound, and bad lease calls refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_PATHS } from '@remora/proxy/contract';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { DEFAULT_MESH_CONFIG } from '../../../injector/src/config/mesh.js';
import type { EngineSpec, MeshConfig } from '../../../injector/src/config/mesh.js';
import { BundleDir } from '../../../injector/src/engine/bundles.js';
import { Leases } from '../../../injector/src/engine/leases.js';
import { engineRoutes } from '../../../injector/src/engine/routes.js';
import type { EngineRoutes } from '../../../injector/src/engine/routes.js';
import { packTarGz } from '../../../injector/src/engine/tar.js';
import { sha256 } from '../../../proxy/src/supervisor/bundle-fetch.js';
import { startLoopbackCa, workloadCert } from '../../helpers/workload-cert.js';
import { pinoLines } from '../policy/helpers.js';

const TD = 'engine-routes.test';
const root = newRoot(TD);
const pods = [0, 1, 2].map((i) => workloadCert(root, `spiffe://${TD}/ns/shop/sa/web-${i}`));
const foreign = workloadCert(newRoot('evil.test'), `spiffe://evil.test/ns/shop/sa/web`);
const dir = mkdtempSync(join(tmpdir(), 'remora-engine-routes-'));
const gz = packTarGz([{ path: 'engine.js', data: Buffer.from('export {};\n') }]);
writeFileSync(join(dir, 'v2.tar.gz'), gz);
writeFileSync(join(dir, 'secret.txt'), 'not a bundle');
let engine: EngineSpec = {
  ...DEFAULT_MESH_CONFIG.engine,
  version: 'v2',
  rollout: { maxConcurrent: 2, leaseSeconds: 60 },
};
const mesh = (): MeshConfig => ({ ...DEFAULT_MESH_CONFIG, engine });
const { log, lines } = pinoLines();
let routes: EngineRoutes;
let ca: CaServer;

beforeAll(async () => {
  routes = engineRoutes({ bundles: new BundleDir(dir), mesh, leases: new Leases(), logger: log, pollMs: 50 });
  ca = await startLoopbackCa(root, TD, { routes: routes.routes, logger: log });
  for (let i = 0; i < 200 && routes.current() === undefined; i++) await new Promise((r) => setTimeout(r, 25));
});
afterAll(async () => {
  routes.stop();
  await ca.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(
  path: string,
  o: { method?: string; body?: string; cert?: { keyPem: string; certPem: string } | null } = {},
): Promise<{ status: number; body: Buffer }> {
  const cert = o.cert === undefined ? pods[0] : o.cert;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: ca.port,
        path,
        method: o.method ?? 'GET',
        ca: root.certPem,
        checkServerIdentity: () => undefined,
        agent: false,
        ...(cert ? { key: cert.keyPem, cert: cert.certPem } : {}),
        headers: o.body !== undefined ? { 'content-type': 'application/json' } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}
const lease = (body: Record<string, unknown>, cert = pods[0]) =>
  call(CA_PATHS.engineLease, { method: 'POST', body: JSON.stringify(body), cert }).then((r) => ({
    status: r.status,
    json: JSON.parse(r.body.toString()) as Record<string, unknown>,
  }));

describe('engine routes on the CA listener', () => {
  it('serves the announced bundle by its digest, byte for byte', async () => {
    expect(routes.current()).toEqual({ version: 'v2', digest: sha256(gz), size: gz.length });
    const r = await call(`${CA_PATHS.engineBundle}${sha256(gz).slice(7)}`);
    expect(r.status).toBe(200);
    expect(r.body.equals(gz)).toBe(true);
  });

  it('without a workload certificate of this mesh: 401/403, even for a known digest', async () => {
    const hex = sha256(gz).slice(7);
    expect((await call(`${CA_PATHS.engineBundle}${hex}`, { cert: null })).status).toBe(401);
    expect((await call(`${CA_PATHS.engineBundle}${hex}`, { cert: foreign })).status).toBe(401);
    expect((await call(CA_PATHS.engineLease, { method: 'POST', body: '{}', cert: null })).status).toBe(401);
    expect(lines.some((l) => l.event === 'engine_request_refused')).toBe(true);
  });

  it('unknown digests, other files of the directory and traversal attempts are all 404', async () => {
    for (const tail of [
      '0'.repeat(64),
      sha256(gz).slice(7).toUpperCase(),
      'secret.txt',
      '../secret.txt',
      '..%2f..%2fetc%2fpasswd',
      'v2.tar.gz',
      `${sha256(gz).slice(7)}/../x`,
    ]) {
      const r = await call(`${CA_PATHS.engineBundle}${tail}`);
      expect(r.status, tail).toBe(404);
      expect(r.body.toString()).not.toContain('not a bundle');
    }
    expect((await call(`${CA_PATHS.engineBundle}${sha256(gz).slice(7)}`, { method: 'POST' })).status).toBe(
      405,
    );
  });

  it('at most maxConcurrent leases per version; a release frees one; a retry keeps its own', async () => {
    const digest = sha256(gz);
    expect(
      (await lease({ op: 'acquire', version: 'v2', digest, pod: 'web-0', namespace: 'shop' }, pods[0])).json,
    ).toMatchObject({
      granted: true,
      holders: 1,
    });
    expect(
      (await lease({ op: 'acquire', version: 'v2', digest, pod: 'web-0', namespace: 'shop' }, pods[0])).json,
    ).toMatchObject({
      granted: true,
    });
    expect(
      (await lease({ op: 'acquire', version: 'v2', digest, pod: 'web-1', namespace: 'shop' }, pods[1])).json,
    ).toMatchObject({
      granted: true,
      holders: 2,
    });
    const third = await lease(
      { op: 'acquire', version: 'v2', digest, pod: 'web-2', namespace: 'shop' },
      pods[2],
    );
    expect(third.json).toMatchObject({ granted: false, holders: 2, maxConcurrent: 2 });
    expect(third.json.retryAfterSeconds).toBeGreaterThan(0);
    expect(
      (
        await lease(
          { op: 'release', version: 'v2', outcome: 'succeeded', pod: 'web-0', namespace: 'shop' },
          pods[0],
        )
      ).json,
    ).toEqual({
      released: true,
    });
    expect(
      (await lease({ op: 'acquire', version: 'v2', digest, pod: 'web-2', namespace: 'shop' }, pods[2])).json,
    ).toMatchObject({
      granted: true,
    });
    // a version (or digest) other than the one announced gets no lease
    expect(
      (await lease({ op: 'acquire', version: 'v1', digest, pod: 'web-0', namespace: 'shop' })).status,
    ).toBe(409);
    expect(
      (
        await lease({
          op: 'acquire',
          version: 'v2',
          digest: `sha256:${'1'.repeat(64)}`,
          pod: 'web-0',
          namespace: 'shop',
        })
      ).status,
    ).toBe(409);
  });

  it('bad lease calls are refused with a reason and change nothing', async () => {
    const bad = [
      'not json',
      '[]',
      JSON.stringify({ op: 'steal', version: 'v2' }),
      JSON.stringify({ op: 'acquire', version: '../v2' }),
      JSON.stringify({ op: 'acquire', version: 'v2', pod: 'Web_0' }),
      JSON.stringify({ op: 'report', version: 'v2', state: 'pwned' }),
    ];
    for (const body of bad) {
      const r = await call(CA_PATHS.engineLease, { method: 'POST', body });
      expect(r.status, body).toBe(400);
      expect(JSON.parse(r.body.toString())).toHaveProperty('error');
    }
    const big = await call(CA_PATHS.engineLease, {
      method: 'POST',
      body: JSON.stringify({ op: 'report', detail: 'x'.repeat(10_000) }),
    });
    expect(big.status).toBe(413);
  });

  it('a version whose file is missing is announced as unavailable, with the reason; a pinned digest is announced as pinned', async () => {
    engine = { ...engine, version: 'v9' };
    await expect
      .poll(() => routes.current(), { timeout: 5000 })
      .toMatchObject({ version: 'v9', error: expect.stringMatching(/ENOENT/) });
    // a pin is announced as it is (the proxies check the bytes against it); a file that hashes
    // otherwise is served under it and said so
    const pin = `sha256:${'2'.repeat(64)}`;
    engine = { ...engine, version: 'v2', digest: pin };
    await expect
      .poll(() => routes.current(), { timeout: 5000 })
      .toEqual({ version: 'v2', digest: pin, size: gz.length });
    expect(lines.find((l) => l.event === 'engine_bundle_pin_mismatch')).toMatchObject({
      pinned: pin,
      file: sha256(gz),
    });
    const served = await call(`${CA_PATHS.engineBundle}${'2'.repeat(64)}`);
    expect(served.status).toBe(200);
    expect(sha256(served.body)).not.toBe(pin);
    engine = { ...engine, version: 'v2', digest: sha256(gz) };
    await expect
      .poll(() => routes.current(), { timeout: 5000 })
      .toEqual({ version: 'v2', digest: sha256(gz), size: gz.length });
  });
});

describe('Leases', () => {
  it('frees a lease not released within leaseSeconds (a proxy that died mid-upgrade)', () => {
    let t = 0;
    const l = new Leases(() => t);
    expect(l.acquire('a', 'ns/a', 'v2', 1, 60).verdict.granted).toBe(true);
    expect(l.acquire('b', 'ns/b', 'v2', 1, 60).verdict.granted).toBe(false);
    t = 60_000;
    const r = l.acquire('b', 'ns/b', 'v2', 1, 60);
    expect(r.verdict.granted).toBe(true);
    expect(r.expired.map((x) => x.pod)).toEqual(['ns/a']);
    expect(l.peak).toBe(1);
  });
});
