/**
 * Two real sidecars (the compiled supervisor + engine, explicit mode on loopback) with
 * certificates from a real identity CA: `b` in front of an app, `a` whose outbound target is a
 * discovered service with one meshed endpoint behind `b`'s tunnel. Everything is stopped by PID
 * and the directory removed in `close`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startCaServer } from '../../injector/src/ca/server.js';
import type { CaServer } from '../../injector/src/ca/server.js';
import { newRoot } from '../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../injector/src/ca/tokens.js';
import { ENV } from '../../proxy/src/contract.js';
import { startSidecar } from '../proxy/telemetry/sidecar.js';
import type { Sidecar } from '../proxy/telemetry/sidecar.js';

export interface MeshPair {
  readonly a: Sidecar;
  readonly b: Sidecar;
  readonly dir: string;
  readonly idA: string;
  readonly idB: string;
  close(): Promise<void>;
}

export interface MeshPairOptions {
  readonly trustDomain: string;
  /** the service A's outbound listener sends to (its destination key) */
  readonly service: string;
  /** the app's port behind B (the endpoint's port) */
  readonly appPort: number;
  readonly envA?: Readonly<Record<string, string>>;
  readonly envB?: Readonly<Record<string, string>>;
}

function tunnelPort(s: Sidecar): number {
  const port = (s.ports as unknown as Record<string, number | undefined>).tunnel;
  if (port === undefined) throw new Error(`no tunnel port in ${JSON.stringify(s.ports)}`);
  return port;
}

export async function startMeshPair(o: MeshPairOptions): Promise<MeshPair> {
  const td = o.trustDomain;
  const dir = mkdtempSync(join(tmpdir(), 'remora-mesh-pair-'));
  const idA = `spiffe://${td}/ns/shop/sa/frontend`;
  const idB = `spiffe://${td}/ns/shop/sa/reviews`;
  const tokens = new Map([
    ['token-a-0123456789abcdef', { namespace: 'shop', serviceAccount: 'frontend' }],
    ['token-b-0123456789abcdef', { namespace: 'shop', serviceAccount: 'reviews' }],
  ]);
  const root = newRoot(td);
  writeFileSync(join(dir, 'bundle.pem'), root.certPem);
  let ca: CaServer | undefined;
  let a: Sidecar | undefined;
  let b: Sidecar | undefined;
  const close = async (): Promise<void> => {
    for (const s of [a, b]) await s?.stop();
    await ca?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const meshEnv = (name: string, token: string, workload: string): Record<string, string> => {
    const tokenFile = join(dir, `${name}.token`);
    writeFileSync(tokenFile, token);
    return {
      [ENV.caAddress]: `127.0.0.1:${(ca as CaServer).port}`,
      [ENV.caBundleFile]: join(dir, 'bundle.pem'),
      [ENV.tokenFile]: tokenFile,
      [ENV.trustDomain]: td,
      [ENV.workload]: workload,
      [ENV.serviceAccount]: workload,
      [ENV.podNamespace]: 'shop',
    };
  };
  try {
    ca = await startCaServer({
      host: '127.0.0.1',
      port: 0,
      ca: root,
      trustDomain: td,
      reviewer: staticTokenReviewer(tokens),
      ttlSeconds: 3600,
      logger: pino({ level: 'silent' }),
      namespace: 'remora-system',
      serviceAccount: 'remora-injector',
    });
    b = await startSidecar({ ...meshEnv('b', 'token-b-0123456789abcdef', 'reviews'), ...o.envB });
    const disc = join(dir, 'discovery.json');
    const endpoint = {
      ip: '127.0.0.1',
      port: o.appPort,
      meshed: true,
      identity: idB,
      tunnelPort: tunnelPort(b),
      service: 'reviews.shop',
      workload: 'reviews',
      namespace: 'shop',
    };
    writeFileSync(disc, JSON.stringify({ services: { [o.service]: { endpoints: [endpoint] } } }));
    a = await startSidecar({
      ...meshEnv('a', 'token-a-0123456789abcdef', 'frontend'),
      [ENV.discoveryFile]: disc,
      [ENV.outboundTarget]: o.service,
      ...o.envA,
    });
  } catch (err) {
    await close();
    throw err;
  }
  return { a, b, dir, idA, idB, close };
}
