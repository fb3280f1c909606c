// gRPC between meshed pods, end to end in network namespaces (issue 12): pod A's app calls a
// Service ClusterIP; A's remora-init rules capture the connection for A's sidecar (outbound),
// which carries the calls over HTTP/2 inside its mTLS tunnel to the endpoint's sidecar
// (inbound, strict mTLS), which delivers them over h2c to the pod's app. The identity CA is
// remora-injector's, in a pod of its own; discovery is a static file every sidecar reads.
//
// The grpc-js client and servers are test/helpers/grpc.ts, in this process; each pod's app is
// grpc-relay.mjs, carrying bytes unchanged between the pod's own TCP (as the app's UID, so the
// pod's rules apply) and a unix socket of this process. So every byte of a call crosses both
// sidecars, and the test still sees what each server got (metadata, deadline, cancellation).
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, METRICS, PEER_IDENTITY_HEADER, PORTS } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import {
  EchoClient,
  chat,
  collect,
  echoesIntact,
  grpc,
  spray,
  startGrpcServer,
  statusProblems,
  unary,
} from '../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../helpers/grpc.js';
import { Harness, eventually, readMetrics, sumMetric } from './harness/index.js';
import type { Identity, Pod } from './harness/index.js';
import { PROXY_IDENTITY, runInit, startMeshCa, startProxy } from './harness/remora.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const RELAY = fileURLToPath(new URL('./grpc-relay.mjs', import.meta.url));
const TD = 'cluster.local';
const ID = { a: `spiffe://${TD}/ns/shop/sa/client`, b: `spiffe://${TD}/ns/shop/sa/echo` };
const TOKENS: Record<string, string> = {
  'token-of-grpc-a-0123456789': 'shop/client',
  'token-of-grpc-b-0123456789': 'shop/echo',
};
/** One Service on the first server pod, one on all three (the per-call spread). */
const SVC = { one: '10.96.0.30', three: '10.96.0.31' };
const GATEWAY = '10.213.0.1';
const GRPC_PORT = 50051;
const CA_PORT = 15012;

function meta(md: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) m.set(k, v);
  return m;
}

/** Resolves when `check` holds (polled), or rejects after `ms`. */
function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  return eventually(
    what,
    () => Promise.resolve(check()),
    (v) => v,
    ms,
  ).then(() => undefined);
}

describe.skipIf(skip !== undefined)(`gRPC between meshed pods in namespaces ${skip ?? ''}`, () => {
  let h: Harness;
  let a: Pod;
  const servers: Pod[] = [];
  const peers: GrpcPeer[] = [];
  const clients: Echo[] = [];
  let client: Echo;
  let spreadClient: Echo;

  beforeAll(async () => {
    h = Harness.create();
    const ctrl = h.addPod('ctrl');
    a = h.addPod('a');
    for (const n of [1, 2, 3]) servers.push(h.addPod(`s${n}`));
    const dir = h.tempDir(PROXY_IDENTITY);
    const sockets = h.tempDir(APP);

    // The ClusterIPs are routed to the bridge namespace (a connect needs a route before the
    // capture rules see it); A's sidecar then picks an endpoint from discovery.
    execIn(h.bridgeNs, ['ip', 'addr', 'add', `${GATEWAY}/24`, 'dev', h.bridge]);
    for (const p of [ctrl, a, ...servers])
      execIn(p.ns, ['ip', 'route', 'add', '10.96.0.0/16', 'via', GATEWAY]);

    const ca = await startMeshCa(h, ctrl, { trustDomain: TD, tokens: TOKENS, port: CA_PORT });
    const endpoint = (p: Pod): Record<string, unknown> => ({
      ip: p.ip,
      port: GRPC_PORT,
      meshed: true,
      identity: ID.b,
      service: 'echo.shop',
      workload: 'echo',
      namespace: 'shop',
    });
    const discovery = join(dir, 'discovery.json');
    writeFileSync(
      discovery,
      JSON.stringify({
        services: {
          [`${SVC.one}:${GRPC_PORT}`]: { endpoints: [endpoint(servers[0] as Pod)] },
          [`${SVC.three}:${GRPC_PORT}`]: { endpoints: servers.map(endpoint) },
        },
      }),
    );
    const meshEnv = (token: string, extra: Record<string, string> = {}): Record<string, string> =>
      ca.env(token, { [ENV.discoveryFile]: discovery, ...extra });

    // Three server pods: init rules, a strict-mTLS sidecar, the relay to their own grpc-js server.
    for (const [i, pod] of servers.entries()) {
      const peer = await startGrpcServer(`echo-${i + 1}`, {
        address: `unix:${join(sockets, `server-${i + 1}.sock`)}`,
      });
      peers.push(peer);
      chmodSync(join(sockets, `server-${i + 1}.sock`), 0o777); // the relay runs as the app's UID
      await runInit(h, pod);
      await startProxy(h, pod, meshEnv('token-of-grpc-b-0123456789', { [ENV.mtlsMode]: 'strict' }));
      const relay = h.spawn(
        pod,
        process.execPath,
        [RELAY, 'server', String(GRPC_PORT), join(sockets, `server-${i + 1}.sock`)],
        { as: APP, label: `relay ${pod.name}` },
      );
      await relay.waitForLine(/^listening /);
    }
    await runInit(h, a);
    await startProxy(h, a, meshEnv('token-of-grpc-a-0123456789'));
    const clientRelay = async (name: string, svc: string): Promise<Echo> => {
      const path = join(sockets, `${name}.sock`);
      const relay = h.spawn(a, process.execPath, [RELAY, 'client', path, svc, String(GRPC_PORT)], {
        as: APP,
        label: `relay ${name}`,
      });
      await relay.waitForLine(/^listening /);
      // One channel: grpc-js keeps one HTTP/2 connection for it, so one TCP connection from A.
      const c = new EchoClient(`unix:${path}`, grpc.credentials.createInsecure(), {
        'grpc.default_authority': 'echo.shop.svc.cluster.local',
        'grpc.max_receive_message_length': 8 * 1024 * 1024,
        'grpc.max_send_message_length': 8 * 1024 * 1024,
      }) as unknown as Echo;
      clients.push(c);
      return c;
    };
    client = await clientRelay('one', SVC.one);
    spreadClient = await clientRelay('three', SVC.three);
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const p of peers) await p.close();
    await h?.teardown();
  });

  /** The first server pod's grpc-js server: the single endpoint of SVC.one. */
  const peer = (): GrpcPeer => peers[0] as GrpcPeer;

  it('unary: the message and metadata both ways; the server learns A’s verified identity', async () => {
    const r = await unary(client, 'hello through two sidecars', {
      'x-echo-colour': 'blue',
      // a forged identity is dropped by B's sidecar, which sets the verified one
      [PEER_IDENTITY_HEADER]: 'spiffe://forged/ns/x/sa/admin',
    });
    expect(r.err).toBeNull();
    expect(r.res?.toString()).toBe('hello through two sidecars');
    expect(r.headers['x-echo-colour']).toBe('blue');
    expect(r.headers['x-server-id']).toBe('echo-1');
    expect(r.trailers['x-trailer-colour']).toBe('blue');
    const call = peer().calls.at(-1);
    expect(call?.metadata['x-echo-colour']).toBe('blue');
    expect(call?.metadata[PEER_IDENTITY_HEADER]).toBe(ID.a);
  });

  it('client streaming: every message arrives', async () => {
    expect(await collect(client, 100, 1000)).toEqual({ count: 100, bytes: 100_000 });
  });

  it('server streaming: every message arrives, in order, then OK', async () => {
    const r = await spray(client, 300, 4096);
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.received).toBe(300);
    expect(r.inOrder).toBe(true);
  });

  it('bidi: each message comes back before the next goes', async () => {
    expect(await chat(client, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `ping${i}`));
  });

  it('a 3 MiB message each way', async () => {
    expect(await echoesIntact(client, 3 * 1024 * 1024)).toBe(true);
  });

  it('every status code 1..16 is carried with its message and trailers', async () => {
    expect(await statusProblems(client)).toEqual([]);
  });

  it('a deadline is propagated: the server gets the caller’s, measured from its own receipt', async () => {
    const before = peer().calls.length;
    const sent = Date.now();
    const deadline = sent + 10_000;
    expect((await unary(client, 'x', {}, { deadline })).err).toBeNull();
    const after = Date.now();
    const got = peer().calls[before]?.deadline as number;
    expect(Number.isFinite(got)).toBe(true);
    // gRPC deadlines travel as relative timeouts: each receiver counts what it was told is left
    // from when it got the call, so the server's is the caller's plus at most the time in
    // transit (never more than the whole call took), never later than that.
    expect(got).toBeLessThanOrEqual(deadline + (after - sent) + 3);
    expect(got).toBeGreaterThan(sent);
  });

  it('a call past its deadline ends DEADLINE_EXCEEDED and the server sees it cancelled', async () => {
    const before = peer().calls.length;
    const r = await unary(client, 'x', { 'x-delay-ms': '3000' }, { deadline: Date.now() + 300 });
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await until(() => peer().calls[before]?.cancelled === true, 'the server call to be cancelled');
    expect(peer().calls[before]?.ended).toBe(false);
  });

  it('cancellation by the client reaches the server', async () => {
    const before = peer().calls.length;
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = client.unary(Buffer.from('x'), meta({ 'x-delay-ms': '8000' }), {}, (e) =>
        resolve(e as grpc.ServiceError),
      );
      void until(() => peer().calls.length > before, 'the call at the server').then(() => call.cancel());
    });
    expect(err.code).toBe(grpc.status.CANCELLED);
    await until(() => peer().calls[before]?.cancelled === true, 'the server call to be cancelled');
    expect(peer().calls[before]?.ended).toBe(false);
  });

  it('per-call spread: one client connection’s calls reach all three server pods', async () => {
    const before = peers.map((p) => p.calls.length);
    const by = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const r = await unary(spreadClient, `call-${i}`);
      expect(r.err).toBeNull();
      const id = r.headers['x-server-id'] ?? 'none';
      by.set(id, (by.get(id) ?? 0) + 1);
    }
    expect([...by.keys()].sort()).toEqual(['echo-1', 'echo-2', 'echo-3']);
    expect(peers.map((p, i) => p.calls.length - (before[i] ?? 0)).reduce((x, y) => x + y)).toBe(60);
    // A's sidecar accepted them all on one connection (the relay dials once per unix connection).
    const opened = await eventually(
      'both client connections counted',
      async () =>
        sumMetric(await readMetrics(h, a, PORTS.metrics), METRICS.tcpOpened, {
          direction: 'outbound',
          protocol: 'http2',
        }),
      (v) => v >= 2,
    );
    expect(opened).toBe(2);
  });

  it('A’s sidecar counts the calls as gRPC with their status', async () => {
    const count = (labels: Record<string, string>): Promise<number> =>
      readMetrics(h, a, PORTS.metrics).then((s) => sumMetric(s, METRICS.requestsTotal, labels));
    // the supervisor publishes the engine's counters with its heartbeat: wait for them
    await eventually(
      'status 16 counted',
      () => count({ direction: 'outbound', protocol: 'grpc', grpc_status: '16' }),
      (v) => v >= 1,
    );
    expect(
      await count({
        direction: 'outbound',
        protocol: 'grpc',
        grpc_status: '0',
        destination_service: 'echo.shop',
      }),
    ).toBeGreaterThanOrEqual(60);
  });
});

/** A setup command inside a namespace; throws with its output when it fails. */
function execIn(ns: string, args: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}
