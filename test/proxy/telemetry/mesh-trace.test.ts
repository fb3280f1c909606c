// One trace through the mTLS mesh tunnel: two remora-proxy engines (real processes, explicit
// mode on loopback) get certificates from a real identity CA; A's outbound reaches B's app
// through B's tunnel. B's SERVER span is the child of A's CLIENT span and names the caller's
// verified identity; the app sees B's span as its parent.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { ENV, OTEL_ENV } from '../../../proxy/src/contract.js';
import { SPAN_KIND, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import type { OtlpReceiver } from '../../helpers/otlp-receiver.js';
import { get, startRecordingApp } from './sidecar.js';
import type { RecordingApp } from './sidecar.js';

const MAIN = fileURLToPath(new URL('../../../proxy/dist/main.js', import.meta.url));
const TD = 'telemetry.test';
const ID_A = `spiffe://${TD}/ns/shop/sa/frontend`;
const ID_B = `spiffe://${TD}/ns/shop/sa/reviews`;
const TOKENS = new Map([
  ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
  ['token-b-0123456789abcdef', { namespace: 'shop', serviceAccount: 'reviews' }],
]);
const SERVICE = '127.0.0.210:80';
const CALLER_TRACE = '6e0c63257de34c926f9efcd03899f0e5';
const CALLER_SPAN = '1b4e28ba2fa1d283';

interface Engine {
  proc: ChildProcess;
  ports: Record<'inbound' | 'outbound' | 'tunnel', number>;
  output: () => string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The engine alone (proxy/dist/main.js), its ports read from its `listening` log line. */
async function startEngine(env: Record<string, string>): Promise<Engine> {
  const proc = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { main } = await import(${JSON.stringify(MAIN)}); process.exit(await main());`,
    ],
    {
      env: {
        PATH: process.env.PATH ?? '',
        [ENV.bindHost]: '127.0.0.1',
        [ENV.inboundPort]: '0',
        [ENV.outboundPort]: '0',
        [ENV.tunnelPort]: '0',
        [ENV.healthPort]: '0',
        [ENV.metricsPort]: '0',
        [ENV.adminPort]: '0',
        [ENV.logLevel]: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const end = Date.now() + 20_000;
  for (;;) {
    const line = out.split('\n').find((l) => l.includes('"event":"listening"'));
    if (line !== undefined) {
      const l = (JSON.parse(line) as { listeners: Record<string, { port: number }> }).listeners;
      return {
        proc,
        output: () => out,
        ports: {
          inbound: l.inbound?.port ?? 0,
          outbound: l.outbound?.port ?? 0,
          tunnel: l.tunnel?.port ?? 0,
        },
      };
    }
    if (proc.exitCode !== null || Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`engine did not start:\n${out}`);
    }
    await sleep(25);
  }
}

describe('trace through the mTLS mesh tunnel (real CA, two engines)', () => {
  let dir: string;
  let ca: CaServer;
  let rx: OtlpReceiver;
  let app: RecordingApp;
  const engines: Engine[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remora-tel-mesh-'));
    const root = newRoot(TD);
    writeFileSync(join(dir, 'bundle.pem'), root.certPem);
    ca = await startCaServer({
      host: '127.0.0.1',
      port: 0,
      ca: root,
      trustDomain: TD,
      reviewer: staticTokenReviewer(TOKENS),
      ttlSeconds: 3600,
      logger: pino({ level: 'silent' }),
      namespace: 'remora-system',
      serviceAccount: 'remora-injector',
    });
    rx = await startOtlpReceiver();
    app = await startRecordingApp();
  });

  afterAll(async () => {
    for (const e of engines) if (e.proc.exitCode === null) e.proc.kill('SIGKILL');
    await app?.close();
    await rx?.close();
    await ca?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function meshEnv(name: string, token: string, workload: string): Record<string, string> {
    const tokenFile = join(dir, `${name}.token`);
    writeFileSync(tokenFile, token);
    return {
      [ENV.caAddress]: `127.0.0.1:${ca.port}`,
      [ENV.caBundleFile]: join(dir, 'bundle.pem'),
      [ENV.tokenFile]: tokenFile,
      [ENV.trustDomain]: TD,
      [ENV.workload]: workload,
      [ENV.podNamespace]: 'shop',
      [OTEL_ENV.endpoint]: rx.url,
      [OTEL_ENV.bspScheduleDelay]: '50',
    };
  }

  it('B server span: child of A client span, source identity = A verified identity', async () => {
    const b = await startEngine(meshEnv('b', 'token-b-0123456789abcdef', 'reviews'));
    engines.push(b);
    const disc = join(dir, 'discovery.json');
    writeFileSync(
      disc,
      JSON.stringify({
        services: {
          [SERVICE]: {
            endpoints: [
              { ip: '127.0.0.1', port: app.port, meshed: true, identity: ID_B, tunnelPort: b.ports.tunnel },
            ],
          },
        },
      }),
    );
    const a = await startEngine({
      ...meshEnv('a', 'token-a-0123456789abcdef', 'frontend'),
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: SERVICE,
    });
    engines.push(a);

    // Both need their certificate first: retry until the call goes through.
    let status = 0;
    const end = Date.now() + 15_000;
    while (status !== 200 && Date.now() < end) {
      const r = await get(`http://127.0.0.1:${a.ports.outbound}/reviews/9`, {
        traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      }).catch(() => ({ status: 0 }));
      status = r.status;
      if (status !== 200) await sleep(200);
    }
    expect(status, `${a.output()}\n${b.output()}`).toBe(200);
    const last = app.received.at(-1);
    expect(last?.['x-remora-peer-identity']).toBe(ID_A);

    const spans = await rx.waitFor((s) => {
      const t = s.filter(
        (x) => x.traceId === CALLER_TRACE && x.attributes['http.response.status_code'] === 200,
      );
      return t.some((x) => x.kind === SPAN_KIND.server) && t.some((x) => x.kind === SPAN_KIND.client);
    });
    const ok = spans.filter(
      (x) => x.traceId === CALLER_TRACE && x.attributes['http.response.status_code'] === 200,
    );
    const server = ok.find((x) => x.kind === SPAN_KIND.server);
    const client = ok.find((x) => x.spanId === server?.parentSpanId);
    expect(client).toMatchObject({ kind: SPAN_KIND.client, resource: { 'service.name': 'frontend' } });
    expect(server?.attributes).toMatchObject({
      'remora.direction': 'inbound',
      'remora.source.identity': ID_A,
      'remora.source.namespace': 'shop',
      'remora.destination.workload': 'reviews',
    });
    expect(String(last?.traceparent)).toBe(`00-${CALLER_TRACE}-${server?.spanId}-01`);
  });
});
