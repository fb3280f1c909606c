/**
 * `degrade` never silently bypasses a control (DESIGN §4, issue 10 item 8): with a real
 * supervisor whose engine is killed (and every restart made to fail, fixture engine), inbound
 * connections to a port an authorization policy governs are reset, not relayed; outbound
 * relaying goes on. The governed ports come from the policy file (read by the supervisor), from
 * the engine's last heartbeat, or are unknown (a stream configured, nothing reported): then every
 * inbound connection is reset.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { config, get, metric, request, startSupervisor, waitFor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';

const REAL_ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));

let app: http.Server;
let appPort = 0;
let sup: RunningSupervisor | undefined;
const dir = mkdtempSync(join(tmpdir(), 'remora-dp-'));

beforeAll(async () => {
  app = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('app direct\n'));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as AddressInfo).port;
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  app.closeAllConnections();
  app.close();
});
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

function policyFile(name: string, ports: number[]): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'apiVersion: remora.dev/v1',
      'kind: PolicySet',
      'policies:',
      '  - name: app',
      '    inbound:',
      `      - ports: [${ports.join(', ')}]`,
      '        authorization:',
      '          default: deny',
      '          rules:',
      '            - { name: local, action: allow, source: { cidrs: [127.0.0.0/8] } }',
      '',
    ].join('\n'),
  );
  return file;
}

/** A degrade-mode supervisor (fixture engine); `outage()` kills the engine and fails its restarts. */
async function degraded(name: string, env: Record<string, string>): Promise<RunningSupervisor> {
  const control = join(dir, `engine-${name}`);
  writeFileSync(control, 'ok');
  const s = await startSupervisor({
    env: {
      [ENV.failureMode]: 'degrade',
      [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
      [ENV.outboundTarget]: `127.0.0.1:${appPort}`,
      FIXTURE_ENGINE_FILE: control,
      ...env,
    },
  });
  sup = s;
  return s;
}

async function outage(s: RunningSupervisor, name: string): Promise<void> {
  writeFileSync(join(dir, `engine-${name}`), 'fail-start');
  const c = await config(s);
  process.kill(c.engines.find((e) => e.role === 'active')?.pid as number, 'SIGKILL');
  await waitFor('degraded', async () => (await metric(s, 'remora_proxy_degraded')) === 1);
}

const outcome = (port: number): Promise<string> =>
  request(port, '/').then(
    (r) => r.body,
    (e: NodeJS.ErrnoException) => e.code ?? String(e),
  );

describe('degrade with authorization (real supervisor, fixture engine killed)', () => {
  it('degrade relayed past authorization: an inbound port under a policy file is now reset, outbound still relayed', async () => {
    const s = await degraded('file', { [ENV.policyFile]: policyFile('file', [appPort]) });
    await outage(s, 'file');
    expect(await outcome(s.ports.inbound)).toBe('ECONNRESET');
    expect(await outcome(s.ports.outbound)).toBe('app direct\n');
    expect(
      await metric(s, 'remora_supervisor_reset_connections_total', { listener: 'inbound', reason: 'policy' }),
    ).toBe(1);
    expect(await metric(s, 'remora_supervisor_relayed_connections_total', { listener: 'inbound' })).toBe(0);
    const started = s.logs().find((l) => l.event === 'degraded_mode_started');
    expect(started?.authzPorts).toEqual({ all: false, ports: [appPort] });
    // Degraded is still "ready": the app keeps its outbound traffic.
    expect((await get(s.ports.health, '/healthz/ready')).status).toBe(200);
  });

  it('a broken edit of the policy file (which also keeps engines from starting) keeps the last good answer', async () => {
    const file = policyFile('edit', [appPort]);
    const s = await degraded('edit', { [ENV.policyFile]: file });
    writeFileSync(file, 'apiVersion: remora.dev/v1\nkind: PolicySet\npolicies: nope\n');
    await outage(s, 'edit');
    expect(await outcome(s.ports.inbound)).toBe('ECONNRESET');
    await waitFor('warning', () => s.logs().some((l) => l.event === 'degraded_policy_unreadable'));
  });

  it('a policy that governs other ports only: the inbound port is relayed as before', async () => {
    const other = appPort === 65535 ? 1 : appPort + 1;
    const s = await degraded('other', { [ENV.policyFile]: policyFile('other', [other]) });
    await outage(s, 'other');
    expect(await outcome(s.ports.inbound)).toBe('app direct\n');
  });

  it("the policy from the stream: the engine's last heartbeat names the governed ports (IPC), and they are reset", async () => {
    const s = await degraded('reported', {
      // A policy stream rides the discovery connection, which needs the workload certificate
      // (so the CA); none of the three is dialled by the fixture engine.
      [ENV.discoveryAddress]: '127.0.0.1:1',
      [ENV.caAddress]: '127.0.0.1:1',
      [ENV.caBundleFile]: join(dir, 'unused-bundle.pem'),
      [ENV.tokenFile]: join(dir, 'unused-token'),
      FIXTURE_AUTHZ_PORTS: JSON.stringify({ all: false, ports: [appPort] }),
    });
    await waitFor('a heartbeat with status', async () => (await config(s)).policy !== null);
    await outage(s, 'reported');
    expect(await outcome(s.ports.inbound)).toBe('ECONNRESET');
    expect(await outcome(s.ports.outbound)).toBe('app direct\n');
    expect(
      await metric(s, 'remora_supervisor_reset_connections_total', { listener: 'inbound', reason: 'policy' }),
    ).toBe(1);
  });

  it('the policy from the stream and no engine ever reported it: every inbound connection is reset (unknown), outbound relayed', async () => {
    const s = await degraded('unknown', {
      // A policy stream rides the discovery connection, which needs the workload certificate
      // (so the CA); none of the three is dialled by the fixture engine.
      [ENV.discoveryAddress]: '127.0.0.1:1',
      [ENV.caAddress]: '127.0.0.1:1',
      [ENV.caBundleFile]: join(dir, 'unused-bundle.pem'),
      [ENV.tokenFile]: join(dir, 'unused-token'),
    });
    await outage(s, 'unknown');
    expect(await outcome(s.ports.inbound)).toBe('ECONNRESET');
    expect(await outcome(s.ports.outbound)).toBe('app direct\n');
    expect(
      await metric(s, 'remora_supervisor_reset_connections_total', {
        listener: 'inbound',
        reason: 'policy_unknown',
      }),
    ).toBe(1);
  });

  it('the real engine: killed, its restarts failing on a broken policy edit, the governed inbound port is reset', async () => {
    const file = policyFile('real', [appPort]);
    const s = await startSupervisor({
      engine: REAL_ENGINE,
      env: {
        [ENV.failureMode]: 'degrade',
        [ENV.inboundTarget]: `127.0.0.1:${appPort}`,
        [ENV.outboundTarget]: `127.0.0.1:${appPort}`,
        [ENV.policyFile]: file,
        [ENV.accessLog]: 'off',
      },
    });
    sup = s;
    // The engine enforces it while it runs: 127.0.0.1 is allowed by the rule.
    expect(await outcome(s.ports.inbound)).toBe('app direct\n');
    writeFileSync(file, 'kind: nothing\n');
    const c = await config(s);
    process.kill(c.engines.find((e) => e.role === 'active')?.pid as number, 'SIGKILL');
    await waitFor('degraded', async () => (await metric(s, 'remora_proxy_degraded')) === 1, 15_000);
    expect(await outcome(s.ports.inbound)).toBe('ECONNRESET');
    expect(await outcome(s.ports.outbound)).toBe('app direct\n');
  });

  it('the degraded relay had no connection cap: it keeps REMORA_MAX_CONNECTIONS per listener too', async () => {
    const s = await degraded('cap', { [ENV.maxConnections]: '1' });
    await outage(s, 'cap');
    // One relayed keep-alive connection holds the only slot.
    const held = net.connect(s.ports.inbound, '127.0.0.1');
    held.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      held.on('data', (c: Buffer) => {
        if (c.toString().includes('app direct')) resolve();
      });
      held.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
    });
    expect(await outcome(s.ports.inbound)).toBe('ECONNRESET');
    expect(
      await metric(s, 'remora_supervisor_reset_connections_total', {
        listener: 'inbound',
        reason: 'over_cap',
      }),
    ).toBe(1);
    // Outbound is another listener with its own count.
    expect(await outcome(s.ports.outbound)).toBe('app direct\n');
    held.destroy();
    await waitFor('the slot free again', async () => (await outcome(s.ports.inbound)) === 'app direct\n');
  });

  it('no policy source at all: degrade relays inbound as it always did', async () => {
    const s = await degraded('none', {});
    await outage(s, 'none');
    expect(await outcome(s.ports.inbound)).toBe('app direct\n');
  });
});
