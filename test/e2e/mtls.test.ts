// Mutual TLS between meshed pods, end to end in network namespaces (issue 4 §5). The control
// plane (remora-injector's identity CA, static tokens) runs in its own pod; pods A and B run
// remora-init and remora-proxy as UID/GID 1337 with their apps as UID 1000; a Service ClusterIP
// is emulated with DNAT (+ masquerade) in the bridge namespace, as kube-proxy does. tcpdump on
// A's veth shows what crosses the wire.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, INBOUND_PASSTHROUGH_SOURCE, INJECTOR_ENV, METRICS, PORTS } from '../../proxy/src/contract.js';
import { newRoot } from '../../injector/src/ca/root.js';
import { missingPrerequisite } from '../helpers/env.js';
import { Harness, eventually, httpRequest, readMetrics, sumMetric, tcpExchange } from './harness/index.js';
import type { Identity, Pod, Proc } from './harness/index.js';
import { BIN, PROXY_IDENTITY, runInit, startProxy } from './harness/remora.js';
import { REPO_ROOT } from './harness/harness.js';

const skip = missingPrerequisite({
  root: true,
  tools: ['ip', 'iptables', 'iptables-restore', 'setpriv', 'ss', 'tcpdump'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const APP_SCRIPT = fileURLToPath(new URL('./mtls-app.mjs', import.meta.url));
const INJECTOR_BIN = `${REPO_ROOT}injector/dist/bin/remora-injector.js`;
const TD = 'cluster.local';
const ID = {
  a: `spiffe://${TD}/ns/shop/sa/client`,
  b: `spiffe://${TD}/ns/shop/sa/web`,
};
const TOKENS: Record<string, string> = {
  'token-of-pod-a-0123456789': 'shop/client',
  'token-of-pod-b-0123456789': 'shop/web',
  'token-of-pod-e-0123456789': 'shop/client',
};
/** Service ClusterIPs (outside the pods' subnet, routed through the bridge namespace). */
const SVC = { http: '10.96.0.10', tcp: '10.96.0.11', wrongId: '10.96.0.12' };
const GATEWAY = '10.213.0.1';
const HTTP_PORT = 8080;
const ECHO_PORT = 9000;
const CA_PORT = 15012;
const OTHER_CA_PORT = 15013;
/** Certificates live 10 s: the proxies renew every ~7 s during the whole test. */
const TTL_SECONDS = 10;

interface Reply {
  server: string;
  url: string;
  identity: string | null;
  remote: string;
}

/** Runs a setup command inside the pod's namespace; throws with its output when it fails. */
function sh(_h: Harness, pod: Pod, cmd: string, args: string[]): Promise<void> {
  execFileSync('ip', ['netns', 'exec', pod.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return Promise.resolve();
}

/** tcpdump reading a capture file (no namespace needed): the packet lines matching `filter`. */
function readCapture(pcap: string, filter: string): string {
  return execFileSync('tcpdump', ['-r', pcap, '-n', filter], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

describe.skipIf(skip !== undefined)(`mTLS between meshed pods in namespaces ${skip ?? ''}`, () => {
  let h: Harness;
  let ctrl: Pod;
  let a: Pod;
  let b: Pod;
  let c: Pod;
  let e: Pod;
  let bridge: Pod;
  let proxyA: Proc;
  let proxyB: Proc;
  let dir: string;
  let ca: Proc;

  async function get(pod: Pod, url: string): Promise<Reply> {
    const r = await httpRequest(h, pod, url, { as: APP });
    if (!r.ok) throw new Error(`GET ${url} from ${pod.name}: ${r.error}`);
    if (r.status !== 200) throw new Error(`GET ${url} from ${pod.name}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as Reply;
  }

  function meshEnv(
    token: string,
    discovery: string,
    extra: Record<string, string> = {},
  ): Record<string, string> {
    const tokenFile = join(dir, `${token}.token`);
    writeFileSync(tokenFile, token);
    return {
      [ENV.caAddress]: `${ctrl.ip}:${CA_PORT}`,
      [ENV.caBundleFile]: join(dir, 'bundle.pem'),
      [ENV.tokenFile]: tokenFile,
      [ENV.trustDomain]: TD,
      [ENV.discoveryFile]: discovery,
      [ENV.logLevel]: 'info',
      ...extra,
    };
  }

  beforeAll(async () => {
    h = Harness.create();
    ctrl = h.addPod('ctrl');
    a = h.addPod('a');
    b = h.addPod('b');
    c = h.addPod('c');
    e = h.addPod('e');
    dir = h.tempDir(PROXY_IDENTITY);
    bridge = { name: 'bridge', ns: h.bridgeNs, ip: GATEWAY, ip6: '', iface: h.bridge };

    // kube-proxy's part: the bridge namespace routes and DNATs the ClusterIPs to B; masquerade
    // so B's replies come back through the same conntrack entry.
    await sh(h, bridge, 'ip', ['addr', 'add', `${GATEWAY}/24`, 'dev', h.bridge]);
    await sh(h, bridge, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    for (const [svc, port, target] of [
      [SVC.http, 80, HTTP_PORT],
      [SVC.tcp, ECHO_PORT, ECHO_PORT],
      [SVC.wrongId, 80, HTTP_PORT],
    ] as const) {
      await sh(h, bridge, 'iptables', [
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-d',
        svc,
        '-p',
        'tcp',
        '--dport',
        String(port),
        '-j',
        'DNAT',
        '--to-destination',
        `${b.ip}:${target}`,
      ]);
    }
    await sh(h, bridge, 'iptables', [
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-m',
      'conntrack',
      '--ctstate',
      'DNAT',
      '-j',
      'MASQUERADE',
    ]);
    for (const p of [ctrl, a, b, c, e])
      await sh(h, p, 'ip', ['route', 'add', '10.96.0.0/16', 'via', GATEWAY]);

    // The control plane: the identity CA with a mounted root and static tokens.
    const root = newRoot(TD);
    const caDir = h.tempDir();
    writeFileSync(join(caDir, 'ca.crt'), root.certPem);
    writeFileSync(join(caDir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(caDir, 'tokens.json'), JSON.stringify(TOKENS));
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    const discovery = join(dir, 'discovery.json');
    writeFileSync(
      discovery,
      JSON.stringify({
        services: {
          // service/workload/namespace: A's destination labels (through the injector's stream).
          [`${SVC.http}:80`]: {
            endpoints: [
              {
                ip: b.ip,
                port: HTTP_PORT,
                meshed: true,
                identity: ID.b,
                service: 'web.shop',
                workload: 'web',
                namespace: 'shop',
              },
            ],
          },
          [`${SVC.tcp}:${ECHO_PORT}`]: {
            endpoints: [{ ip: b.ip, port: ECHO_PORT, meshed: true, identity: ID.b }],
          },
          // Discovery says another workload lives there: B's certificate must not satisfy it.
          [`${SVC.wrongId}:80`]: {
            endpoints: [
              { ip: b.ip, port: HTTP_PORT, meshed: true, identity: `spiffe://${TD}/ns/shop/sa/payments` },
            ],
          },
        },
      }),
    );

    // The injector serves discovery from the same file on the CA's listener (the stream A uses).
    const startCa = async (port: number, rootDir: string, label: string, served?: string): Promise<Proc> => {
      const p = h.spawn(ctrl, process.execPath, [INJECTOR_BIN, '--no-kubernetes'], {
        label,
        env: {
          [INJECTOR_ENV.caDir]: rootDir,
          [INJECTOR_ENV.staticTokens]: join(caDir, 'tokens.json'),
          [INJECTOR_ENV.certTtlSeconds]: String(TTL_SECONDS),
          [INJECTOR_ENV.caPort]: String(port),
          [INJECTOR_ENV.port]: String(port + 1000),
          [INJECTOR_ENV.logLevel]: 'info',
          ...(served !== undefined ? { [INJECTOR_ENV.discoveryFile]: served } : {}),
        },
      });
      await p.waitForLine(/"event":"ca_started"/, 15_000);
      return p;
    };
    ca = await startCa(CA_PORT, caDir, 'identity CA', discovery);
    // A second, unrelated CA: pod E's certificate comes from it.
    const other = newRoot('evil.local');
    const otherDir = h.tempDir();
    writeFileSync(join(otherDir, 'ca.crt'), other.certPem);
    writeFileSync(join(otherDir, 'ca.key'), other.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await startCa(OTHER_CA_PORT, otherDir, 'other CA');
    // E trusts the mesh root (so it can verify B) and the other root (its own CA).
    writeFileSync(join(dir, 'bundle-e.pem'), `${other.certPem}${root.certPem}`);

    for (const p of [a, b, e]) await runInit(h, p);
    proxyB = await startProxy(
      h,
      b,
      meshEnv('token-of-pod-b-0123456789', discovery, { [ENV.mtlsMode]: 'strict' }),
    );
    // A learns endpoints from the injector's discovery stream (subscribed on first dial); B and E
    // read the same map from the static file.
    proxyA = await startProxy(
      h,
      a,
      meshEnv('token-of-pod-a-0123456789', discovery, {
        [ENV.discoveryFile]: '',
        [ENV.discoveryAddress]: `${ctrl.ip}:${CA_PORT}`,
      }),
    );
    await startProxy(
      h,
      e,
      meshEnv('token-of-pod-e-0123456789', discovery, {
        [ENV.caAddress]: `${ctrl.ip}:${OTHER_CA_PORT}`,
        [ENV.caBundleFile]: join(dir, 'bundle-e.pem'),
      }),
    );
    const app = h.spawn(b, process.execPath, [APP_SCRIPT, String(HTTP_PORT)], {
      as: APP,
      env: { AGENT_NAME: 'b' },
      label: 'app b',
    });
    await app.waitForLine(/^listening /);
    await h.startAgent(b, 'echo-server', [String(ECHO_PORT)], { as: APP });
  }, 120_000);
  afterAll(() => h?.teardown());

  const metric = async (pod: Pod, name: string, labels: Record<string, string>): Promise<number> =>
    sumMetric(await readMetrics(h, pod, PORTS.metrics), name, labels);
  /** The supervisor publishes the engine's counters with its heartbeat: wait for the value. */
  const metricReaches = (
    pod: Pod,
    name: string,
    labels: Record<string, string>,
    min: number,
  ): Promise<number> =>
    eventually(
      `${name} ${JSON.stringify(labels)} >= ${min} in ${pod.name}`,
      () => metric(pod, name, labels),
      (v) => v >= min,
    );

  /** tcpdump on A's veth until `stop`, which returns the capture file's path and bytes. */
  async function captureOnA(): Promise<{ stop(): Promise<{ pcap: string; bytes: Buffer }> }> {
    const pcap = join(h.tempDir(), 'a.pcap');
    const dump = h.spawn(a, 'tcpdump', ['-i', a.iface, '-n', '-U', '--immediate-mode', '-w', pcap, 'tcp'], {
      label: 'tcpdump',
    });
    await eventually(
      'tcpdump writing',
      () => Promise.resolve(existsSync(pcap) ? statSync(pcap).size : 0),
      (size) => size >= 24,
    );
    return {
      stop: async () => {
        // Let the last packets reach the file before stopping the capture.
        await new Promise((r) => setTimeout(r, 500));
        await h.stop(dump);
        return { pcap, bytes: readFileSync(pcap) };
      },
    };
  }

  /** Packets to B's tunnel port were captured, none to B's app ports. */
  function onlyTunnelPackets(pcap: string): void {
    const tunnelPackets = readCapture(pcap, `tcp port ${PORTS.tunnel}`);
    expect(
      tunnelPackets.split('\n').filter((l) => l.includes(`${b.ip}.${PORTS.tunnel}`)).length,
    ).toBeGreaterThan(0);
    expect(readCapture(pcap, `tcp port ${HTTP_PORT} or tcp port ${ECHO_PORT}`).trim()).toBe('');
  }

  it('A’s app calls B’s ClusterIP in plain HTTP and TCP; B’s app gets the marker; the wire never carries it', async () => {
    const capture = await captureOnA();
    const marker = `mtls-marker-${randomBytes(8).toString('hex')}`;
    const control = `plaintext-control-${randomBytes(8).toString('hex')}`;
    // Control: plaintext that crosses the same veth is visible in the capture.
    const ctl = await httpRequest(h, a, `http://${b.ip}:${PORTS.health}/healthz/ready?${control}`);
    expect(ctl).toMatchObject({ ok: true, status: 200 });

    const reply = await get(a, `http://${SVC.http}/${marker}`);
    expect(reply).toEqual({
      server: 'b',
      url: `/${marker}`,
      identity: ID.a,
      remote: INBOUND_PASSTHROUGH_SOURCE.ipv4,
    });
    expect(await tcpExchange(h, a, SVC.tcp, ECHO_PORT, `tcp-${marker}`, APP)).toEqual({
      ok: true,
      data: `tcp-${marker}`,
    });
    const { pcap, bytes } = await capture.stop();
    expect(bytes.includes(Buffer.from(control))).toBe(true);
    expect(bytes.includes(Buffer.from(marker))).toBe(false);
    onlyTunnelPackets(pcap);
  });

  it('A’s app opens a WebSocket to B’s ClusterIP: it crosses the mTLS tunnel (B’s app sees A’s identity, not a forged one), the wire never carries the marker', async () => {
    const capture = await captureOnA();
    const marker = `ws-marker-${randomBytes(8).toString('hex')}`;
    const r = await tcpExchange(
      h,
      a,
      SVC.http,
      80,
      `GET /ws?${marker} HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
        `x_remora_peer_identity: spiffe://forged/ns/x/sa/admin\r\n\r\nframe-${marker}`,
      APP,
    );
    const { pcap, bytes } = await capture.stop();
    expect(r.ok).toBe(true);
    const data = r.ok ? r.data : '';
    expect(data).toMatch(/^HTTP\/1\.1 101 /);
    expect(data).toContain(`x-identity: ${ID.a}\r\n`);
    expect(data.endsWith(`frame-${marker}`)).toBe(true);
    expect(bytes.includes(Buffer.from(marker))).toBe(false);
    onlyTunnelPackets(pcap);
  });

  it("both sides' /metrics name each other: A's from the injector's discovery stream, B's from A's proven identity", async () => {
    expect(await get(a, `http://${SVC.http}/graph`)).toMatchObject({ server: 'b', identity: ID.a });
    await metricReaches(
      a,
      METRICS.requestsTotal,
      {
        direction: 'outbound',
        status_code: '200',
        destination_service: 'web.shop',
        destination_workload: 'web',
        destination_namespace: 'shop',
        destination_identity: ID.b,
      },
      1,
    );
    // B has no discovery entry for A's identity: the workload is A's service account.
    await metricReaches(
      b,
      METRICS.requestsTotal,
      {
        direction: 'inbound',
        status_code: '200',
        source_workload: 'client',
        source_namespace: 'shop',
        source_identity: ID.a,
      },
      1,
    );
  });

  it('strict mode: B refuses plaintext from a non-meshed pod (via the ClusterIP and directly)', async () => {
    const before = await metric(b, METRICS.policyDenials, { reason: 'plaintext_in_strict_mode' });
    const viaService = await httpRequest(h, c, `http://${SVC.http}/plain`, { as: APP });
    const direct = await httpRequest(h, c, `http://${b.ip}:${HTTP_PORT}/plain`, { as: APP });
    expect(viaService.ok).toBe(false);
    expect(direct.ok).toBe(false);
    expect(
      await metricReaches(b, METRICS.policyDenials, { reason: 'plaintext_in_strict_mode' }, before + 2),
    ).toBe(before + 2);
  });

  it('a peer whose certificate names another identity than discovery says is refused', async () => {
    const before = await metric(a, METRICS.tlsHandshakeFailures, {
      direction: 'outbound',
      reason: 'identity_mismatch',
    });
    const r = await httpRequest(h, a, `http://${SVC.wrongId}/should-not-arrive`, { as: APP });
    expect(r).toMatchObject({ ok: true, status: 502 });
    await metricReaches(
      a,
      METRICS.tlsHandshakeFailures,
      { direction: 'outbound', reason: 'identity_mismatch' },
      before + 1,
    );
    // The engine's log lines arrive in batches (up to 50 ms late).
    await eventually(
      'tls_handshake_failed logged',
      () => Promise.resolve(proxyA.output()),
      (out) => /"event":"tls_handshake_failed".*"reason":"identity_mismatch"/.test(out),
    );
  });

  it('a certificate from another CA is refused by B', async () => {
    const before = await metric(b, METRICS.tlsHandshakeFailures, {
      direction: 'inbound',
      reason: 'untrusted',
    });
    const r = await httpRequest(h, e, `http://${SVC.http}/from-other-ca`, { as: APP });
    expect(r.ok && r.status === 200).toBe(false);
    await metricReaches(
      b,
      METRICS.tlsHandshakeFailures,
      { direction: 'inbound', reason: 'untrusted' },
      before + 1,
    );
  });

  it('certificates rotated every few seconds under steady traffic lose no request', async () => {
    const loaded = (p: Proc): number =>
      p
        .output()
        .split('\n')
        .filter((l) => l.includes('"event":"certificate_loaded"')).length;
    const startA = loaded(proxyA);
    const startB = loaded(proxyB);
    const failures: string[] = [];
    let n = 0;
    const end = Date.now() + 2.2 * TTL_SECONDS * 1000;
    while (Date.now() < end) {
      n += 1;
      const r = await httpRequest(h, a, `http://${SVC.http}/steady-${n}`, { as: APP });
      if (!r.ok || r.status !== 200) failures.push(`${n}: ${JSON.stringify(r)}`);
      if (n % 10 === 0) {
        const t = await tcpExchange(h, a, SVC.tcp, ECHO_PORT, `steady-${n}`, APP);
        if (!t.ok || t.data !== `steady-${n}`) failures.push(`tcp ${n}: ${JSON.stringify(t)}`);
      }
    }
    expect(failures).toEqual([]);
    expect(n).toBeGreaterThan(50);
    expect(loaded(proxyA) - startA).toBeGreaterThanOrEqual(2);
    expect(loaded(proxyB) - startB).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('the CA down at start: the proxy retries and reports not ready', async () => {
    const f = h.addPod('f');
    const proxy = h.spawn(f, process.execPath, [BIN.proxy], {
      as: PROXY_IDENTITY,
      label: 'remora-proxy f',
      env: meshEnv('token-of-pod-a-0123456789', join(dir, 'discovery.json'), {
        [ENV.caAddress]: `${ctrl.ip}:${CA_PORT + 50}`,
      }),
    });
    await eventually(
      'two failed certificate fetches',
      async () =>
        proxy
          .output()
          .split('\n')
          .filter((l) => l.includes('"event":"certificate_fetch_failed"')).length,
      (count) => count >= 2,
      20_000,
    );
    const ready = await httpRequest(h, f, `http://127.0.0.1:${PORTS.health}/healthz/ready`);
    expect(ready).toMatchObject({ ok: true, status: 503 });
    // Under the supervisor the engine only reports ready with a certificate: "no engine ready".
    expect(ready.ok && ready.body).toMatch(/no engine ready|no workload certificate/);
    await h.stop(proxy);
  }, 40_000);

  it('the CA down later: traffic goes on with the current certificate', async () => {
    await h.stop(ca);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await httpRequest(h, a, `http://${SVC.http}/ca-down-${i}`, { as: APP });
      statuses.push(r.ok ? r.status : 0);
    }
    expect(statuses).toEqual(Array(20).fill(200));
    // The proxy is trying to renew meanwhile, and says so.
    await eventually(
      'a failed renewal logged',
      async () => proxyA.output().includes('"event":"certificate_fetch_failed"'),
      (seen) => seen,
      TTL_SECONDS * 1000,
    );
  }, 30_000);
});
