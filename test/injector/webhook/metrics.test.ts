/**
 * The injector's metrics include the identity CA's signings and refusals (the dashboard's
 * "CA signings" panel), read from a real CA listener's counts at render time.
 */
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INJECTOR_METRICS } from '../../../proxy/src/contract.js';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { newRoot } from '../../../injector/src/ca/root.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import { InjectorMetrics } from '../../../injector/src/webhook/metrics.js';

let ca: CaServer;

beforeAll(async () => {
  ca = await startCaServer({
    host: '127.0.0.1',
    port: 0,
    ca: newRoot('metrics.test'),
    trustDomain: 'metrics.test',
    reviewer: staticTokenReviewer(new Map()),
    ttlSeconds: 3600,
    logger: pino({ level: 'silent' }),
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
  });
});

afterAll(async () => {
  await ca.close();
});

describe('InjectorMetrics with the CA', () => {
  it('without a CA: issued 0 and no refusal series', () => {
    const text = new InjectorMetrics().render();
    expect(text).toContain(`${INJECTOR_METRICS.certificatesIssued} 0\n`);
    expect(text).not.toContain(`${INJECTOR_METRICS.certificatesRefused}{`);
  });

  it('counts a real refusal by reason, at render time', async () => {
    const m = new InjectorMetrics();
    m.observeCa(ca);
    // A request without a token, over TLS to the real listener (its root is the mesh's).
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: ca.port, ca: ca.trustBundle, checkServerIdentity: () => undefined },
        () =>
          s.end(
            'POST /v1/certificates HTTP/1.1\r\nhost: ca\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}',
          ),
      );
      s.on('data', () => undefined);
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    const text = m.render();
    const refused = [
      ...text.matchAll(
        new RegExp(`^${INJECTOR_METRICS.certificatesRefused}\\{reason="([a-z_]+)"\\} (\\d+)$`, 'gm'),
      ),
    ];
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.reduce((n, r) => n + Number(r[2]), 0)).toBe(1);
    expect(text).toContain(`${INJECTOR_METRICS.certificatesIssued} 0\n`);
  });
});
