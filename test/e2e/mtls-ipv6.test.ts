// The mesh tunnel between IPv6 pod addresses, end to end in network namespaces. Pods A and B run
// remora-init (IPv4 and IPv6 capture, its default) and remora-proxy (supervisor + engine) as
// UID/GID 1337 with the default ports; the identity CA runs in its own pod. A's app dials B's
// pod IPv6 address directly; discovery names that address as a meshed endpoint, so A's proxy
// opens mTLS to [B's IPv6]:15008, which B's supervisor holds as the IPv6 twin of 0.0.0.0:15008.
// B is strict: plaintext on its capture listeners is refused, so an answer proves the tunnel.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  tools: ['ip', 'iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'setpriv', 'ss', 'tcpdump'],
});

const APP: Identity = { uid: 1000, gid: 1000 };
const APP_SCRIPT = fileURLToPath(new URL('./mtls-app.mjs', import.meta.url));
const INJECTOR_BIN = `${REPO_ROOT}injector/dist/bin/remora-injector.js`;
const TD = 'cluster.local';
const ID = { a: `spiffe://${TD}/ns/shop/sa/client`, b: `spiffe://${TD}/ns/shop/sa/web` };
const TOKENS: Record<string, string> = {
  'token-of-pod-a-0123456789': 'shop/client',
  'token-of-pod-b-0123456789': 'shop/web',
};
const HTTP_PORT = 8080;
const ECHO_PORT = 9000;
const CA_PORT = 15012;

describe.skipIf(skip !== undefined)(`mTLS tunnel between IPv6 pod addresses ${skip ?? ''}`, () => {
  let h: Harness;
  let ctrl: Pod;
  let a: Pod;
  let b: Pod;
  let dir: string;

  beforeAll(async () => {
    h = Harness.create();
    ctrl = h.addPod('ctrl');
    a = h.addPod('a');
    b = h.addPod('b');
    dir = h.tempDir(PROXY_IDENTITY);

    const root = newRoot(TD);
    const caDir = h.tempDir();
    writeFileSync(join(caDir, 'ca.crt'), root.certPem);
    writeFileSync(join(caDir, 'ca.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(caDir, 'tokens.json'), JSON.stringify(TOKENS));
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    // The app dials B's pod address itself (as through a headless Service): that is the key.
    const discovery = join(dir, 'discovery.json');
    const meshed = (port: number) => ({ endpoints: [{ ip: b.ip6, port, meshed: true, identity: ID.b }] });
    writeFileSync(
      discovery,
      JSON.stringify({
        services: {
          [`[${b.ip6}]:${HTTP_PORT}`]: meshed(HTTP_PORT),
          [`[${b.ip6}]:${ECHO_PORT}`]: meshed(ECHO_PORT),
        },
      }),
    );
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
        [ENV.logLevel]: 'info',
        ...extra,
      };
    };
    for (const p of [a, b]) await runInit(h, p);
    await startProxy(h, b, meshEnv('token-of-pod-b-0123456789', { [ENV.mtlsMode]: 'strict' }));
    await startProxy(h, a, meshEnv('token-of-pod-a-0123456789'));
    const app = h.spawn(b, process.execPath, [APP_SCRIPT, String(HTTP_PORT)], {
      as: APP,
      env: { AGENT_NAME: 'b' },
      label: 'app b',
    });
    await app.waitForLine(/^listening /);
    await h.startAgent(b, 'echo-server', [String(ECHO_PORT)], { as: APP });
  }, 120_000);
  afterAll(() => h?.teardown());

  it('B’s supervisor listens on 0.0.0.0:15008 and [::]:15008', () => {
    const out = execFileSync('ip', ['netns', 'exec', b.ns, 'ss', '-H', '-ltn', `sport = :${PORTS.tunnel}`], {
      encoding: 'utf8',
    });
    expect(out).toContain(`0.0.0.0:${PORTS.tunnel}`);
    expect(out).toContain(`[::]:${PORTS.tunnel}`);
  });

  it('A’s app reaches B’s IPv6 address in plain HTTP and TCP through [B]:15008; the wire never carries it', async () => {
    const pcap = join(h.tempDir(), 'a6.pcap');
    const dump = h.spawn(
      a,
      'tcpdump',
      ['-i', a.iface, '-n', '-U', '--immediate-mode', '-w', pcap, 'ip6 and tcp'],
      {
        label: 'tcpdump',
      },
    );
    await eventually(
      'tcpdump writing',
      () => Promise.resolve(existsSync(pcap) ? statSync(pcap).size : 0),
      (size) => size >= 24,
    );
    const marker = `mtls6-marker-${randomBytes(8).toString('hex')}`;
    // Certificates may still be on their way on a loaded machine: the first call may be a 502.
    const r = await eventually(
      'HTTP through the IPv6 tunnel',
      () => httpRequest(h, a, `http://[${b.ip6}]:${HTTP_PORT}/${marker}`, { as: APP }),
      (x) => x.ok && x.status === 200,
      15_000,
    );
    expect(JSON.parse(r.ok ? r.body : '{}')).toEqual({
      server: 'b',
      url: `/${marker}`,
      identity: ID.a,
      remote: INBOUND_PASSTHROUGH_SOURCE.ipv4,
    });
    expect(await tcpExchange(h, a, b.ip6, ECHO_PORT, `tcp-${marker}`, APP)).toEqual({
      ok: true,
      data: `tcp-${marker}`,
    });
    await new Promise((res) => setTimeout(res, 500));
    await h.stop(dump);
    expect(readFileSync(pcap).includes(Buffer.from(marker))).toBe(false);
    const lines = execFileSync('tcpdump', ['-r', pcap, '-n', `tcp port ${PORTS.tunnel}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(lines.split('\n').filter((l) => l.includes(`${b.ip6}.${PORTS.tunnel}`)).length).toBeGreaterThan(0);
    // Nothing went to B's app ports in the clear.
    const clear = execFileSync(
      'tcpdump',
      ['-r', pcap, '-n', `tcp port ${HTTP_PORT} or tcp port ${ECHO_PORT}`],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    expect(clear.trim()).toBe('');
  });
});
