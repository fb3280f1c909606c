/**
 * The injector's policy document: validated with the proxy's parser before it is served, an
 * invalid one refused (kept: the last good, logged with every problem, counted on /metrics),
 * served as NDJSON on the CA listener (snapshot, then each accepted change), and a bad policy
 * file at start stops the injector binary with exit 2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_PATHS, INJECTOR_ENV, INJECTOR_METRICS } from '@remora/proxy/contract';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { PolicyStore } from '../../../injector/src/policy/store.js';
import { InjectorMetrics } from '../../../injector/src/webhook/metrics.js';
import { policyVersion } from '../../../proxy/src/policy/document.js';
import { INVALID, denyAll, denyPaths, runNode } from '../../proxy/policy/distribution-helpers.js';
import { workloadCert } from '../../helpers/workload-cert.js';
import { pinoLines, startPolicyCa } from './helpers.js';

const TD = 'inj-policy.test';
const root = newRoot(TD);
const proxyCert = workloadCert(root, `spiffe://${TD}/ns/shop/sa/orders`);

const logger = pinoLines;

describe('PolicyStore', () => {
  it('serves a valid document whole, refuses an invalid one (keeping the last good), counts both', () => {
    const { log, lines } = logger();
    const metrics = new InjectorMetrics();
    const store = new PolicyStore(log, metrics);
    const seen: string[] = [];
    store.subscribe((s) => seen.push(s.version));
    expect(store.current).toBeUndefined();
    const good = denyPaths(8080, ['/admin']);
    expect(store.update(good, 'file a')).toBe(true);
    expect(store.current).toEqual({ version: policyVersion(good), document: good });
    expect(store.update(INVALID, 'file a')).toBe(false);
    expect(store.current?.document).toBe(good);
    const warn = lines.find((l) => l.event === 'policy_rejected');
    expect(warn?.level).toBe(40);
    expect((warn?.errors as string[]).join('\n')).toContain('10.0.0.0/33');
    expect(warn?.serving).toBe(policyVersion(good));
    // Re-sent unchanged (a file re-read): neither re-logged nor re-counted nor re-streamed.
    expect(store.update(INVALID, 'file a')).toBe(false);
    expect(store.update(good, 'file a')).toBe(true);
    store.missing('file a', 'ENOENT');
    expect(lines.some((l) => l.event === 'policy_missing')).toBe(true);
    expect(store.current?.document).toBe(good);
    expect(seen).toEqual([policyVersion(good)]);
    const text = metrics.render();
    expect(text).toContain(`${INJECTOR_METRICS.policyUpdates}{result="accepted"} 1`);
    expect(text).toContain(`${INJECTOR_METRICS.policyUpdates}{result="rejected"} 1`);
  });
});

function get(port: number, path: string): Promise<{ status: number; lines: () => unknown[]; close(): void }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path,
        ca: root.certPem,
        checkServerIdentity: () => undefined,
        agent: false,
        key: proxyCert.keyPem,
        cert: proxyCert.certPem,
      },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => (buf += c));
        resolve({
          status: res.statusCode ?? 0,
          lines: () =>
            buf
              .split('\n')
              .filter((l) => l !== '')
              .map((l) => JSON.parse(l) as unknown),
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
  });
}

describe('GET /v1/policy on the CA listener', () => {
  let server: CaServer;
  const { log } = logger();
  const store = new PolicyStore(log);
  beforeAll(async () => {
    server = await startPolicyCa({ root, trustDomain: TD, store, logger: log });
  });
  afterAll(() => server.close());

  it('answers a snapshot (null before any document), then one line per accepted change only', async () => {
    const s = await get(server.port, `${CA_PATHS.policy}?workload=shop/orders`);
    try {
      expect(s.status).toBe(200);
      await expect.poll(() => s.lines(), { timeout: 5000 }).toEqual([{ version: null, document: null }]);
      const a = denyPaths(8080, ['/admin']);
      store.update(a, 'test');
      store.update(INVALID, 'test');
      const b = denyAll(8080);
      store.update(b, 'test');
      await expect
        .poll(() => s.lines(), { timeout: 5000 })
        .toEqual([
          { version: null, document: null },
          { version: policyVersion(a), document: a },
          { version: policyVersion(b), document: b },
        ]);
      // A new subscriber starts from the current document.
      const t = await get(server.port, `${CA_PATHS.policy}?workload=billing/`);
      await expect
        .poll(() => t.lines(), { timeout: 5000 })
        .toEqual([{ version: policyVersion(b), document: b }]);
      t.close();
    } finally {
      s.close();
    }
    await expect.poll(() => store.subscriptions(), { timeout: 5000 }).toBe(0);
  });

  it.each([
    ['no workload', `${CA_PATHS.policy}`],
    ['no slash', `${CA_PATHS.policy}?workload=shop`],
    ['bad namespace', `${CA_PATHS.policy}?workload=Shop!/orders`],
    ['extra part', `${CA_PATHS.policy}?workload=a/b/c`],
  ])('refuses a request with %s (400)', async (_what, path) => {
    const s = await get(server.port, path);
    s.close();
    expect(s.status).toBe(400);
  });
});

describe('the compiled remora-injector with a bad REMORA_POLICY_FILE', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'remora-inj-policy-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 before listening, naming the file and every problem', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, INVALID);
    const bin = fileURLToPath(new URL('../../../injector/dist/bin/remora-injector.js', import.meta.url));
    const r = await runNode([bin, '--no-kubernetes', '--host', '127.0.0.1'], {
      [INJECTOR_ENV.port]: '0',
      [INJECTOR_ENV.caPort]: '0',
      [INJECTOR_ENV.tlsDir]: join(dir, 'no-tls'),
      [INJECTOR_ENV.policyFile]: file,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${INJECTOR_ENV.policyFile}: ${file}: `);
    expect(r.stderr).toContain('10.0.0.0/33');
    expect(r.stderr).toContain('rateLimits');
    expect(r.stdout).not.toContain('"event":"started"');
  });
});
