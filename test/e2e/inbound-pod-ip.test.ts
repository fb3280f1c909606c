// Inbound forwards to the pod IP (DESIGN §3, issue 10 item 6), end to end in network
// namespaces. Pod B runs remora-init and remora-proxy with REMORA_POD_IP (as the injector sets
// it) and four apps: one bound to 127.0.0.1 only (a pprof, a local Redis), one to every address,
// one to the pod IP only, and one to 127.0.0.1 on a port B names in
// REMORA_LOCALHOST_INBOUND_PORTS. Pod C (no mesh) calls B in plaintext through B's 15006; pod
// A's app calls B through A's proxy, which tunnels to B:15008 with `CONNECT 127.0.0.1:<port>`.
// Before, both paths delivered to 127.0.0.1:<port>: the loopback-only app was reachable from
// any pod, and the pod-IP-only app was not reachable at all.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, INBOUND_PASSTHROUGH_SOURCE, INJECTOR_ENV, PORTS } from '../../proxy/src/contract.js';
import { newRoot } from '../../injector/src/ca/root.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, httpRequest, tcpExchange } from './harness/index.js';
import type { Identity, Pod } from './harness/index.js';
import { PROXY_IDENTITY, runInit, startProxy } from './harness/remora.js';
import { REPO_ROOT } from './harness/harness.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'setpriv', 'ss'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const INJECTOR_BIN = `${REPO_ROOT}injector/dist/bin/remora-injector.js`;
const TD = 'cluster.local';
const ID = { a: `spiffe://${TD}/ns/shop/sa/client`, b: `spiffe://${TD}/ns/shop/sa/web` };
const TOKENS: Record<string, string> = {
  'token-of-pod-a-0123456789': 'shop/client',
  'token-of-pod-b-0123456789': 'shop/web',
};
const CA_PORT = 15012;
const SUPERVISOR_RUNNER = fileURLToPath(
  new URL('../proxy/supervisor/fixtures/run-supervisor.mjs', import.meta.url),
);
const FIXTURE_ENGINE = fileURLToPath(new URL('../proxy/supervisor/fixtures/engine.mjs', import.meta.url));
const PORT = Object.freeze({
  loopbackOnly: 7001,
  everywhere: 7002,
  podIpOnly: 7003,
  annotated: 7004,
  loopbackEcho: 7005,
});

interface Reply {
  server: string;
  url: string;
  remote: string;
}

describe.skipIf(skip !== undefined)(`inbound delivery to the pod IP ${skip ?? ''}`, () => {
  let h: Harness;
  let ctrl: Pod;
  let a: Pod;
  let b: Pod;
  let c: Pod;

  beforeAll(async () => {
    h = Harness.create();
    ctrl = h.addPod('ctrl');
    a = h.addPod('a');
    b = h.addPod('b');
    c = h.addPod('c');
    const dir = h.tempDir(PROXY_IDENTITY);

    const root = newRoot(TD);
    const caDir = h.tempDir();
    writeFileSync(join(caDir, 'ca.crt'), root.certPem);
    writeFileSync(join(caDir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(caDir, 'tokens.json'), JSON.stringify(TOKENS));
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    // A's app dials B's pod address; discovery names each port a meshed endpoint of B.
    const discovery = join(dir, 'discovery.json');
    const services: Record<string, unknown> = {};
    for (const port of Object.values(PORT))
      services[`${b.ip}:${port}`] = { endpoints: [{ ip: b.ip, port, meshed: true, identity: ID.b }] };
    writeFileSync(discovery, JSON.stringify({ services }));
    const ca = h.spawn(ctrl, process.execPath, [INJECTOR_BIN, '--no-kubernetes'], {
      label: 'identity CA',
      env: {
        [INJECTOR_ENV.caDir]: caDir,
        [INJECTOR_ENV.staticTokens]: join(caDir, 'tokens.json'),
        [INJECTOR_ENV.caPort]: String(CA_PORT),
        [INJECTOR_ENV.port]: String(CA_PORT + 1000),
        [INJECTOR_ENV.logLevel]: 'info',
      },
    });
    await ca.waitForLine(/"event":"ca_started"/, 15_000);
    const meshEnv = (token: string, extra: Record<string, string> = {}): Record<string, string> => {
      const tokenFile = join(dir, `${token}.token`);
      writeFileSync(tokenFile, token);
      return {
        [ENV.caAddress]: `${ctrl.ip}:${CA_PORT}`,
        [ENV.caBundleFile]: join(dir, 'bundle.pem'),
        [ENV.tokenFile]: tokenFile,
        [ENV.trustDomain]: TD,
        [ENV.discoveryFile]: discovery,
        ...extra,
      };
    };
    for (const p of [a, b]) await runInit(h, p);
    // startProxy sets REMORA_POD_IP to the pod's address, as the injector's downward API does.
    await startProxy(
      h,
      b,
      meshEnv('token-of-pod-b-0123456789', {
        [ENV.localhostInboundPorts]: String(PORT.annotated),
      }),
    );
    await startProxy(h, a, meshEnv('token-of-pod-a-0123456789'));
    await h.startAgent(b, 'http-server', [String(PORT.loopbackOnly), '127.0.0.1'], { as: APP });
    await h.startAgent(b, 'http-server', [String(PORT.everywhere)], { as: APP });
    await h.startAgent(b, 'http-server', [String(PORT.podIpOnly), b.ip], { as: APP });
    await h.startAgent(b, 'http-server', [String(PORT.annotated), '127.0.0.1'], { as: APP });
    await h.startAgent(b, 'echo-server', [String(PORT.loopbackEcho), '127.0.0.1'], { as: APP });
    // Certificates may still be on their way on a loaded machine: wait for one tunnelled answer.
    await eventually(
      'the tunnel A → B',
      () => httpRequest(h, a, `http://${b.ip}:${PORT.everywhere}/warm`, { as: APP }),
      (r) => r.ok && r.status === 200,
      30_000,
    );
  }, 120_000);
  afterAll(() => h?.teardown());

  const url = (port: number, path: string) => `http://${b.ip}:${port}/${path}`;

  describe('plaintext from another pod (C → B:15006)', () => {
    it('an app port bound to 127.0.0.1 only was reachable from any pod through the proxy: now it is not', async () => {
      const r = await httpRequest(h, c, url(PORT.loopbackOnly, 'pprof'));
      // B's proxy cannot reach <pod IP>:7001 and says so; the app never answers.
      expect(r).toMatchObject({ ok: true, status: 503 });
      expect(r.ok && r.body).toContain('cannot connect to upstream');
      expect(r.ok && r.body).not.toContain('"server"');
      const tcp = await tcpExchange(h, c, b.ip, PORT.loopbackEcho, 'redis-ping');
      expect(tcp.ok && tcp.data).not.toBe('redis-ping');
    });

    it('an app bound to every address or to the pod IP only is reached at the pod IP from 127.0.0.6', async () => {
      for (const port of [PORT.everywhere, PORT.podIpOnly]) {
        const r = await httpRequest(h, c, url(port, 'plain'));
        expect(r).toMatchObject({ ok: true, status: 200 });
        const reply = JSON.parse(r.ok ? r.body : '{}') as Reply;
        expect(reply).toMatchObject({ url: '/plain', remote: INBOUND_PASSTHROUGH_SOURCE.ipv4 });
      }
    });

    it('a port named in REMORA_LOCALHOST_INBOUND_PORTS is delivered to 127.0.0.1', async () => {
      const r = await httpRequest(h, c, url(PORT.annotated, 'annotated'));
      expect(r).toMatchObject({ ok: true, status: 200 });
      expect(JSON.parse(r.ok ? r.body : '{}')).toMatchObject({ url: '/annotated', remote: '127.0.0.1' });
    });
  });

  describe('mTLS through the tunnel (A → B:15008, CONNECT 127.0.0.1:<port>)', () => {
    it('CONNECT 127.0.0.1:<port> reached a loopback-only app from another pod: now it does not', async () => {
      const r = await httpRequest(h, a, url(PORT.loopbackOnly, 'pprof'), { as: APP });
      expect(r.ok && r.status).not.toBe(200);
      expect(r.ok && r.body).not.toContain('"server"');
      const tcp = await tcpExchange(h, a, b.ip, PORT.loopbackEcho, 'redis-ping', APP);
      expect(tcp.ok && tcp.data).not.toBe('redis-ping');
    });

    it('an app bound to every address or to the pod IP only is reached through the tunnel', async () => {
      for (const port of [PORT.everywhere, PORT.podIpOnly]) {
        const r = await httpRequest(h, a, url(port, 'tunnel'), { as: APP });
        expect(r).toMatchObject({ ok: true, status: 200 });
        expect(JSON.parse(r.ok ? r.body : '{}')).toMatchObject({
          url: '/tunnel',
          remote: INBOUND_PASSTHROUGH_SOURCE.ipv4,
        });
      }
    });

    it('the annotated port is reached on 127.0.0.1 through the tunnel', async () => {
      const r = await httpRequest(h, a, url(PORT.annotated, 'tunnel-annotated'), { as: APP });
      expect(r).toMatchObject({ ok: true, status: 200 });
      expect(JSON.parse(r.ok ? r.body : '{}')).toMatchObject({ remote: '127.0.0.1' });
    });
  });

  it("B's own loopback use of the private app is untouched", async () => {
    const r = await httpRequest(h, b, `http://127.0.0.1:${PORT.loopbackOnly}/local`, { as: APP });
    expect(r).toMatchObject({ ok: true, status: 200 });
  });

  it('the degraded relay (engine killed, failure mode degrade) relayed to 127.0.0.1 too: now to the pod IP', async () => {
    // Pod D: the real supervisor with a fixture engine whose restarts the test makes fail.
    const d = h.addPod('d');
    await runInit(h, d);
    const dir = h.tempDir(PROXY_IDENTITY);
    const control = join(dir, 'engine-control');
    writeFileSync(control, 'ok');
    h.spawn(d, process.execPath, [SUPERVISOR_RUNNER, FIXTURE_ENGINE], {
      as: PROXY_IDENTITY,
      env: {
        [ENV.failureMode]: 'degrade',
        [ENV.podIp]: d.ip,
        [ENV.adminTokenFile]: join(dir, 'admin-token'),
        [ENV.logLevel]: 'warn',
        FIXTURE_ENGINE_FILE: control,
      },
      label: 'supervisor d',
    });
    await h.startAgent(d, 'http-server', [String(PORT.loopbackOnly), '127.0.0.1'], { as: APP });
    await h.startAgent(d, 'http-server', [String(PORT.everywhere)], { as: APP });
    const cfg = await eventually(
      'supervisor d serving',
      () => httpRequest(h, d, `http://127.0.0.1:${PORTS.admin}/config`),
      (r) => r.ok && r.status === 200 && (JSON.parse(r.body) as { serving: string }).serving === 'engine',
      15_000,
    );
    const engines = (JSON.parse(cfg.ok ? cfg.body : '{}') as { engines: { pid: number; role: string }[] })
      .engines;
    // The fixture engine answers every inbound connection itself while it runs.
    expect(await httpRequest(h, c, `http://${d.ip}:${PORT.everywhere}/engine`)).toMatchObject({
      ok: true,
      status: 200,
    });
    writeFileSync(control, 'fail-start');
    process.kill(engines.find((e) => e.role === 'active')?.pid as number, 'SIGKILL');
    const relayed = await eventually(
      'the degraded relay reaching the app',
      () => httpRequest(h, c, `http://${d.ip}:${PORT.everywhere}/degraded`),
      (r) => r.ok && r.status === 200 && r.body.includes('"server"'),
      15_000,
    );
    expect(JSON.parse(relayed.ok ? relayed.body : '{}')).toMatchObject({
      url: '/degraded',
      remote: INBOUND_PASSTHROUGH_SOURCE.ipv4,
    });
    const priv = await httpRequest(h, c, `http://${d.ip}:${PORT.loopbackOnly}/pprof`);
    expect(priv.ok && priv.body).not.toContain('"server"');
  });
});
