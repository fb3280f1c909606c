/**
 * The webhook over real HTTPS on a loopback port, with a certificate from our own CA and a
 * client that verifies it.
 */
import { Agent, request } from 'node:https';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MESH_CONFIG } from '../../../injector/src/config/mesh.js';
import { applyPatch } from '../../../injector/src/inject/jsonpatch.js';
import type { JsonPatchOp } from '../../../injector/src/inject/jsonpatch.js';
import type { NamespaceInfo, PodLike } from '../../../injector/src/inject/types.js';
import { createCa, issue } from '../../../injector/src/pki/ca.js';
import { MAX_BODY_BYTES, startWebhook } from '../../../injector/src/webhook/server.js';
import type { Webhook } from '../../../injector/src/webhook/server.js';

const ca = createCa({ commonName: 'test CA' }, 1);
const leaf = issue(ca, {
  subject: { commonName: 'localhost' },
  validityDays: 1,
  dnsNames: ['localhost'],
  ipAddresses: ['127.0.0.1'],
  extKeyUsage: ['serverAuth'],
});

const namespaces = new Map<string, NamespaceInfo>([
  ['shop', { name: 'shop', labels: { 'remora.dev/inject': 'enabled' } }],
  ['plain', { name: 'plain', labels: {} }],
]);
let ready = true;
let wh: Webhook;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      logLines.push(JSON.parse(c.toString()) as Record<string, unknown>);
      cb();
    },
  });
  wh = await startWebhook({
    host: '127.0.0.1',
    port: 0,
    tls: { key: leaf.keyPem, cert: leaf.certPem },
    mesh: () => DEFAULT_MESH_CONFIG,
    namespaces: (n) => namespaces.get(n),
    logger: pino({ level: 'info' }, stream),
    ready: () => ready,
  });
});
afterAll(async () => {
  keepAlive.destroy();
  await wh?.close();
});

interface Res {
  status: number;
  body: string;
  json: () => Record<string, unknown>;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });

function call(
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
  fresh = false,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: wh.port,
        method,
        path,
        ca: ca.certPem,
        servername: 'localhost',
        agent: fresh ? false : keepAlive,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            body: text,
            json: () => JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function review(request: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
}

const pod: PodLike = {
  metadata: { name: 'web', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx', readinessProbe: { httpGet: { port: 80 } } }] },
};

function podReview(extra: Record<string, unknown> = {}, object: unknown = pod): string {
  return review({
    uid: 'uid-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE',
    namespace: 'shop',
    object,
    ...extra,
  });
}

function response(r: Res): Record<string, unknown> {
  const body = r.json();
  expect(body.apiVersion).toBe('admission.k8s.io/v1');
  expect(body.kind).toBe('AdmissionReview');
  return body.response as Record<string, unknown>;
}

async function metric(line: string): Promise<number> {
  const text = (await call('GET', '/metrics')).body;
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m ? Number(m.split(' ')[1]) : 0;
}

describe('webhook over HTTPS', () => {
  it('injects a pod: same uid, JSONPatch, base64 patch that applies', async () => {
    const before = await metric('remora_injector_injections_total');
    const r = await call('POST', '/inject', podReview());
    expect(r.status).toBe(200);
    const resp = response(r);
    expect(resp).toMatchObject({ uid: 'uid-1', allowed: true, patchType: 'JSONPatch' });
    const patch = JSON.parse(Buffer.from(resp.patch as string, 'base64').toString()) as JsonPatchOp[];
    const after = applyPatch(pod, patch);
    expect(after.spec.initContainers!.map((c) => c.name)).toEqual(['remora-init', 'remora-proxy']);
    expect(await metric('remora_injector_injections_total')).toBe(before + 1);
    expect(await metric('remora_injector_reviews_total{result="injected"}')).toBeGreaterThanOrEqual(1);
  });

  it('dryRun gets the same patch but counts no injection', async () => {
    const before = await metric('remora_injector_injections_total');
    const dry = await metric('remora_injector_reviews_total{result="dry_run"}');
    const resp = response(await call('POST', '/inject', podReview({ dryRun: true })));
    expect(resp).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    expect(await metric('remora_injector_injections_total')).toBe(before);
    expect(await metric('remora_injector_reviews_total{result="dry_run"}')).toBe(dry + 1);
  });

  it('skips with a reason, counted by reason', async () => {
    const resp = response(await call('POST', '/inject', podReview({ namespace: 'plain' })));
    expect(resp).toEqual({ uid: 'uid-1', allowed: true });
    expect(
      await metric('remora_injector_skips_total{reason="namespace_not_enabled"}'),
    ).toBeGreaterThanOrEqual(1);
    const hostNet = { ...pod, spec: { ...pod.spec, hostNetwork: true } };
    expect(response(await call('POST', '/inject', podReview({}, hostNet)))).toEqual({
      uid: 'uid-1',
      allowed: true,
    });
    expect(await metric('remora_injector_skips_total{reason="host_network"}')).toBe(1);
    expect(logLines.some((l) => l.event === 'pod_skipped' && l.reason === 'host_network')).toBe(true);
  });

  it('a namespace the lister does not know is not enabled', async () => {
    expect(response(await call('POST', '/inject', podReview({ namespace: 'nowhere' })))).toEqual({
      uid: 'uid-1',
      allowed: true,
    });
  });

  it('rejects a pod with a bad annotation, naming annotation and value', async () => {
    const bad = { ...pod, metadata: { name: 'web', annotations: { 'remora.dev/mtls-mode': 'sorta' } } };
    const resp = response(await call('POST', '/inject', podReview({}, bad)));
    expect(resp).toMatchObject({ uid: 'uid-1', allowed: false, status: { code: 400 } });
    expect((resp.status as { message: string }).message).toContain(
      'remora.dev/mtls-mode: invalid value "sorta"',
    );
  });

  it('allows other kinds, other operations and subresources without a patch', async () => {
    const svc = review({
      uid: 'u2',
      kind: { group: '', version: 'v1', kind: 'Service' },
      operation: 'CREATE',
      namespace: 'shop',
      object: {},
    });
    expect(response(await call('POST', '/inject', svc))).toEqual({ uid: 'u2', allowed: true });
    expect(response(await call('POST', '/inject', podReview({ operation: 'UPDATE' })))).toEqual({
      uid: 'uid-1',
      allowed: true,
    });
    expect(
      response(await call('POST', '/inject', podReview({ subResource: 'ephemeralcontainers' }))),
    ).toEqual({ uid: 'uid-1', allowed: true });
    const deploy = review({
      uid: 'u3',
      kind: { group: 'apps', version: 'v1', kind: 'Pod' },
      operation: 'CREATE',
      namespace: 'shop',
    });
    expect(response(await call('POST', '/inject', deploy))).toEqual({ uid: 'u3', allowed: true });
  });

  const malformed: [string, string | Buffer][] = [
    ['an empty body', ''],
    ['truncated JSON', podReview().slice(0, 100)],
    ['a JSON array', '[]'],
    ['a JSON string', '"review"'],
    ['the wrong kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Review', request: {} })],
    [
      'the v1beta1 API',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} }),
    ],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })],
    ['a missing uid', review({ kind: { kind: 'Pod' }, operation: 'CREATE' })],
    ['a uid that is not a string', review({ uid: 7, kind: { kind: 'Pod' }, operation: 'CREATE' })],
    ['a missing kind', review({ uid: 'u', operation: 'CREATE' })],
    ['a missing operation', review({ uid: 'u', kind: { kind: 'Pod' } })],
    ['dryRun not a boolean', podReview({ dryRun: 'yes' })],
    ['a pod without spec', podReview({}, { metadata: {} })],
    ['a pod without containers', podReview({}, { spec: {} })],
    ['containers not a list', podReview({}, { spec: { containers: 'web' } })],
    ['a container without a name', podReview({}, { spec: { containers: [{}] } })],
    [
      'annotations that are not strings',
      podReview({}, { metadata: { annotations: { a: 1 } }, spec: { containers: [{ name: 'a' }] } }),
    ],
    [
      'a port that is not a number',
      podReview({}, { spec: { containers: [{ name: 'a', ports: [{ containerPort: '80' }] }] } }),
    ],
    ['a pod CREATE without a namespace', podReview({ namespace: undefined })],
    ['invalid UTF-8 / binary', Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
    ['a null volume', podReview({}, { spec: { containers: [{ name: 'a' }], volumes: [null] } })],
    [
      'initContainers not a list',
      podReview({}, { spec: { containers: [{ name: 'a' }], initContainers: {} } }),
    ],
  ];
  it.each(malformed)('answers %s with 400 and a reason', async (_name, body) => {
    const r = await call('POST', '/inject', body);
    expect(r.status).toBe(400);
    const json = r.json();
    expect(typeof json.error).toBe('string');
    expect((json.error as string).length).toBeGreaterThan(5);
  });

  it('answers a body over the cap with 413', async () => {
    const r = await call('POST', '/inject', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20));
    expect(r.status).toBe(413);
    expect(r.json().error).toContain('larger than');
  });

  it(
    'survives 1,000 malformed and hostile reviews, each with a clear answer',
    { timeout: 120_000 },
    async () => {
      const big = JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'x', pad: 'y'.repeat(MAX_BODY_BYTES) },
      });
      const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
      const hostile: (string | Buffer)[] = [
        ...malformed.map((m) => m[1]),
        big,
        deep,
        podReview({}, { spec: { containers: [{ name: 'a', livenessProbe: 'x' }] } }),
        podReview(
          {},
          {
            metadata: { annotations: { 'remora.dev/log-level': 'z'.repeat(100_000) } },
            spec: { containers: [{ name: 'a' }] },
          },
        ),
        podReview({}, { spec: { containers: [{ name: 'a', ports: [{ containerPort: 15001 }] }] } }),
        podReview({ kind: { kind: 'Pod', group: 7 } }),
        podReview(
          {},
          {
            spec: {
              containers: [
                { name: 'a', readinessProbe: { httpGet: { port: 80, httpHeaders: [null, 7, { name: 1 }] } } },
              ],
            },
          },
        ),
        podReview(
          {},
          { spec: { containers: [{ name: 'a', livenessProbe: { httpGet: 7, tcpSocket: 'x', grpc: [] } }] } },
        ),
        podReview(
          {},
          {
            spec: {
              containers: [{ name: 'a', startupProbe: { grpc: { port: { x: 1 } } } }],
              hostNetwork: 'yes',
            },
          },
        ),
        '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","__proto__":{"x":1},"kind":{"kind":"Pod"},"operation":"CREATE"}}',
        podReview(),
      ];
      const counts = new Map<number, number>();
      for (let i = 0; i < 1000; i++) {
        const body = hostile[i % hostile.length] as string | Buffer;
        const r = await call('POST', '/inject', body);
        counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
        expect([200, 400, 413], r.body).toContain(r.status);
        const json = r.json();
        if (r.status === 200) expect((json.response as { uid: string }).uid.length).toBeGreaterThan(0);
        else expect(typeof json.error).toBe('string');
      }
      expect(counts.get(400)).toBeGreaterThan(0);
      expect(counts.get(413)).toBeGreaterThan(0);
      expect(counts.get(200)).toBeGreaterThan(0);
      // Still healthy and still injecting afterwards.
      expect((await call('GET', '/healthz')).status).toBe(200);
      expect(response(await call('POST', '/inject', podReview()))).toMatchObject({
        allowed: true,
        patchType: 'JSONPatch',
      });
    },
  );

  it('/readyz follows readiness; /healthz does not', async () => {
    expect((await call('GET', '/readyz')).status).toBe(200);
    ready = false;
    expect((await call('GET', '/readyz')).status).toBe(503);
    expect((await call('GET', '/healthz')).status).toBe(200);
    ready = true;
  });

  it('/metrics is Prometheus text with the review histogram', async () => {
    const r = await call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.body).toContain('# TYPE remora_injector_review_duration_seconds histogram');
    expect(r.body).toMatch(/remora_injector_review_duration_seconds_bucket\{le="\+Inf"\} \d+/);
    expect(r.body).toMatch(/remora_injector_reviews_total\{result="malformed"\} [1-9]/);
  });

  it('unknown routes get 404', async () => {
    expect((await call('GET', '/nope')).status).toBe(404);
    expect((await call('GET', '/inject')).status).toBe(404);
  });

  it('swaps its certificate for new connections', async () => {
    const ca2 = createCa({ commonName: 'second CA' }, 1);
    const leaf2 = issue(ca2, {
      subject: { commonName: 'localhost' },
      validityDays: 1,
      dnsNames: ['localhost'],
      extKeyUsage: ['serverAuth'],
    });
    wh.setTls({ key: leaf2.keyPem, cert: leaf2.certPem });
    await expect(call('GET', '/healthz', undefined, {}, true)).rejects.toThrow();
    wh.setTls({ key: leaf.keyPem, cert: leaf.certPem });
    expect((await call('GET', '/healthz', undefined, {}, true)).status).toBe(200);
  });
});
