/**
 * Retries on gRPC statuses and outlier detection for gRPC (issue 12 item 3, docs/grpc.md
 * "Retries"): a grpc-js client → the outbound listener → the mesh's endpoint choice over
 * grpc-js servers of a discovered service, under a policy whose route names the statuses
 * (`retries.grpcStatus`). Failing endpoints are real grpc-js servers answering every call with
 * a status, trailers-only (one HEADERS frame with END_STREAM) or after a head.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, scrape } from '../harness.js';
import { TestPolicy, outboundPolicy, startMeshProxy } from '../policy/upstreams.js';
import type { MeshProxy } from '../policy/upstreams.js';
import { grpc, grpcClient, startGrpcServer, unary } from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

const UNAVAILABLE = grpc.status.UNAVAILABLE;

const peers: GrpcPeer[] = [];
const proxies: MeshProxy[] = [];
const clients: Echo[] = [];

async function peer(id: string, fail?: { code: number; headersFirst?: boolean }): Promise<GrpcPeer> {
  const p = await startGrpcServer(id, { fail });
  peers.push(p);
  return p;
}

/** A proxy whose outbound service `service` is `endpoints`, under `section`; and a client on it. */
async function proxy(
  service: string,
  endpoints: readonly GrpcPeer[],
  section: Record<string, unknown>,
  minRetriesPerSecond?: number,
): Promise<{ px: MeshProxy; client: Echo }> {
  const px = await startMeshProxy(
    service,
    endpoints.map((p) => p.port),
    new TestPolicy(outboundPolicy(service, section)),
    { routes: true, minRetriesPerSecond, logLevel: 'debug' },
  );
  proxies.push(px);
  const client = grpcClient(px.outboundPort);
  clients.push(client);
  return { px, client };
}

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(peers.map((p) => p.close()));
});

const metric = async (px: MeshProxy, name: string, labels: Record<string, string>): Promise<number> =>
  sample(await scrape(px.metricsPort), name, labels) ?? 0;

const grpcRetries = (px: MeshProxy): Promise<number> =>
  metric(px, 'remora_retries_total', { direction: 'outbound', reason: 'grpc-status' });

/** Calls of one method a server got. */
const callsTo = (p: GrpcPeer, method: string, route?: string): number =>
  p.calls.filter((c) => c.method === method && (route === undefined || c.metadata['x-route'] === route))
    .length;

/** A client-streaming call of `messages` messages of `size` bytes; its status code. */
function collect(client: Echo, route: string, messages: number, size: number): Promise<number> {
  const md = new grpc.Metadata();
  md.set('x-route', route);
  return new Promise((resolve) => {
    const call = client.collect(md, {}, (err) => resolve(err === null ? 0 : err.code));
    for (let i = 0; i < messages; i++) call.write(Buffer.alloc(size, i % 256));
    call.end();
  });
}

describe('a call answered UNAVAILABLE by one of two endpoints', () => {
  let ok: GrpcPeer;
  let bad: GrpcPeer;
  let px: MeshProxy;
  let client: Echo;
  beforeAll(async () => {
    ok = await peer('pod-ok');
    bad = await peer('pod-bad', { code: UNAVAILABLE });
    ({ px, client } = await proxy('127.0.0.221:50051', [ok, bad], {
      routes: [{ retries: { attempts: 1, backoffMs: 1, grpcStatus: ['UNAVAILABLE'] } }],
    }));
  });

  it('succeeds through a retry on the other endpoint, counted and logged', async () => {
    const n = 30;
    for (let i = 0; i < n; i++) {
      const r = await unary(client, `call ${i}`);
      expect(r.err).toBeNull();
      expect(r.res?.toString()).toBe(`call ${i}`); // the kept message, replayed whole
      expect(r.headers['x-server-id']).toBe('pod-ok');
    }
    // The endpoint choice took the failing one about half the time (never: 2^-30), and ONE
    // retry was always enough: it went to the other endpoint, not to the one that failed.
    const failed = callsTo(bad, 'Unary');
    expect(failed).toBeGreaterThan(0);
    expect(callsTo(ok, 'Unary')).toBe(n);
    expect(await grpcRetries(px)).toBe(failed);
    const logged = px.logs.filter((l) => l.event === 'upstream_retry');
    expect(logged).toHaveLength(failed);
    expect(logged[0]).toMatchObject({ reason: 'grpc-status', grpc_status: UNAVAILABLE, attempt: 2 });
    // The answers the client saw: all OK.
    expect(
      await metric(px, 'remora_requests_total', {
        direction: 'outbound',
        protocol: 'grpc',
        grpc_status: '0',
      }),
    ).toBe(n);
  });
});

describe('one endpoint that answers every call UNAVAILABLE, trailers-only', () => {
  let bad: GrpcPeer;
  let px: MeshProxy;
  let client: Echo;
  beforeAll(async () => {
    bad = await peer('pod-down', { code: UNAVAILABLE });
    const match = (route: string) => ({ headers: [{ name: 'x-route', exact: route }] });
    ({ px, client } = await proxy(
      '127.0.0.222:50051',
      [bad],
      {
        routes: [
          // budget: no share of the requests, only the floor (1/s over the 10 s window = 10)
          {
            match: match('budget'),
            retries: { attempts: 1, backoffMs: 1, budgetPercent: 0, grpcStatus: ['UNAVAILABLE'] },
          },
          {
            match: match('other'),
            retries: { attempts: 2, backoffMs: 1, grpcStatus: ['RESOURCE_EXHAUSTED'] },
          },
          { match: match('stream'), retries: { attempts: 2, backoffMs: 1, grpcStatus: ['UNAVAILABLE'] } },
          { match: match('slow'), retries: { attempts: 5, backoffMs: 1, grpcStatus: ['UNAVAILABLE'] } },
          { match: match('plain'), retries: { attempts: 2, backoffMs: 1 } },
        ],
      },
      1,
    ));
  });

  it('the budget stops the retries', async () => {
    const n = 15;
    for (let i = 0; i < n; i++) {
      const r = await unary(client, 'x', { 'x-route': 'budget' });
      expect(r.err?.code).toBe(UNAVAILABLE);
    }
    // 15 calls, 10 retries from the floor, then the budget said no 5 times.
    expect(callsTo(bad, 'Unary', 'budget')).toBe(n + 10);
    expect(await grpcRetries(px)).toBe(10);
    expect(await metric(px, 'remora_retry_budget_exhausted_total', { direction: 'outbound' })).toBe(5);
  });

  it('a status the route does not name is not retried (nor is any without grpcStatus)', async () => {
    const before = await grpcRetries(px);
    const r = await unary(client, 'x', { 'x-route': 'other' });
    expect(r.err?.code).toBe(UNAVAILABLE);
    expect(r.err?.details).toBe('pod-down fails every call'); // the endpoint's own answer
    expect(callsTo(bad, 'Unary', 'other')).toBe(1);
    const p = await unary(client, 'x', { 'x-route': 'plain' });
    expect(p.err?.code).toBe(UNAVAILABLE);
    expect(callsTo(bad, 'Unary', 'plain')).toBe(1);
    expect(await grpcRetries(px)).toBe(before);
  });

  it('a small client-streaming call complete before the answer is replayed; one past 64 KiB is not', async () => {
    // 3 messages of 100 bytes: kept, sent three times (the first + attempts: 2).
    expect(await collect(client, 'stream', 3, 100)).toBe(UNAVAILABLE);
    expect(callsTo(bad, 'Collect', 'stream')).toBe(3);
    const before = await grpcRetries(px);
    // 10 messages of 10 KiB: more than the replay buffer, so it cannot go again.
    expect(await collect(client, 'stream', 10, 10 * 1024)).toBe(UNAVAILABLE);
    expect(callsTo(bad, 'Collect', 'stream')).toBe(4);
    expect(await grpcRetries(px)).toBe(before);
  });

  it('the deadline bounds the retries, and each retry carries the time left', async () => {
    // Every attempt takes 300 ms; 5 retries would need 1.8 s, the caller gives 1.2 s.
    const deadline = Date.now() + 1200;
    const r = await unary(client, 'x', { 'x-route': 'slow', 'x-delay-ms': '300' }, { deadline });
    expect([grpc.status.DEADLINE_EXCEEDED, UNAVAILABLE]).toContain(r.err?.code);
    const calls = bad.calls.filter((c) => c.metadata['x-route'] === 'slow');
    expect(calls.length).toBeGreaterThanOrEqual(2); // it did retry...
    expect(calls.length).toBeLessThanOrEqual(4); // ...but not past the deadline
    // Each attempt's grpc-timeout is what was left of the caller's: never a fresh 700 ms
    // (slack for grpc-timeout's rounding and the clock's granularity).
    for (const c of calls) expect(c.deadline).toBeLessThanOrEqual(deadline + 50);
  });
});

describe('a call whose answer started (a head, then UNAVAILABLE in trailers)', () => {
  it('is not retried', async () => {
    const bad = await peer('pod-late', { code: UNAVAILABLE, headersFirst: true });
    const { px, client } = await proxy('127.0.0.223:50051', [bad], {
      routes: [{ retries: { attempts: 2, backoffMs: 1, grpcStatus: ['UNAVAILABLE'] } }],
    });
    const r = await unary(client, 'x');
    expect(r.err?.code).toBe(UNAVAILABLE);
    expect(callsTo(bad, 'Unary')).toBe(1);
    expect(await grpcRetries(px)).toBe(0);
  });
});

describe('outlier detection of gRPC failures carried in a 200', () => {
  it('ejects endpoints answering UNAVAILABLE in trailers and trailers-only; the calls go to the good one', async () => {
    const ok = await peer('pod-fine');
    const inTrailers = await peer('pod-trailers', { code: UNAVAILABLE, headersFirst: true });
    const trailersOnly = await peer('pod-trailers-only', { code: UNAVAILABLE });
    const { px, client } = await proxy('127.0.0.224:50051', [ok, inTrailers, trailersOnly], {
      outlierDetection: { consecutive5xx: 2, maxEjectedPercent: 100, baseEjectionMs: 60_000 },
    });
    const ejected = () => metric(px, 'remora_outlier_ejected', {});
    for (let i = 0; i < 200 && (await ejected()) < 2; i++) await unary(client, 'x');
    expect(await ejected()).toBe(2);
    expect(await metric(px, 'remora_outlier_ejections_total', { reason: 'consecutive_5xx' })).toBe(2);
    // Each failing endpoint was ejected at its second failure in a row.
    expect(callsTo(inTrailers, 'Unary')).toBe(2);
    expect(callsTo(trailersOnly, 'Unary')).toBe(2);
    for (let i = 0; i < 10; i++) expect((await unary(client, `after ${i}`)).err).toBeNull();
    expect(callsTo(inTrailers, 'Unary') + callsTo(trailersOnly, 'Unary')).toBe(4);
  });

  it('does not count a status that is not the endpoint’s fault (NOT_FOUND)', async () => {
    const ok = await peer('pod-fine-2');
    const notFound = await peer('pod-not-found', { code: grpc.status.NOT_FOUND });
    const { px, client } = await proxy('127.0.0.225:50051', [ok, notFound], {
      outlierDetection: { consecutive5xx: 1, maxEjectedPercent: 100 },
    });
    for (let i = 0; i < 20; i++) await unary(client, 'x');
    expect(callsTo(notFound, 'Unary')).toBeGreaterThan(1);
    expect(await metric(px, 'remora_outlier_ejections_total', { reason: 'consecutive_5xx' })).toBe(0);
  });
});
