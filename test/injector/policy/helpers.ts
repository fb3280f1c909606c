/** Shared by the policy distribution tests: a logger that keeps its lines, a real CA listener serving policy. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { startCaServer } from '../../../injector/src/ca/server.js';
import type { CaServer } from '../../../injector/src/ca/server.js';
import { staticTokenReviewer } from '../../../injector/src/ca/tokens.js';
import type { Ca } from '../../../injector/src/pki/ca.js';
import type { PolicyStore } from '../../../injector/src/policy/store.js';
import { policyRoute } from '../../../injector/src/policy/stream.js';

export function pinoLines(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      lines.push(JSON.parse(c.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream) as Logger, lines };
}

/** The injector's CA listener on loopback with the policy route only (port 0: any free one). */
export function startPolicyCa(o: {
  root: Ca;
  trustDomain: string;
  store: PolicyStore;
  logger: Logger;
  port?: number;
  /** tokens the CA accepts (token → namespace/service account), for proxies that fetch a certificate */
  tokens?: ReadonlyMap<string, { namespace: string; serviceAccount: string }>;
}): Promise<CaServer> {
  return startCaServer({
    host: '127.0.0.1',
    port: o.port ?? 0,
    ca: o.root,
    trustDomain: o.trustDomain,
    reviewer: staticTokenReviewer(o.tokens ?? new Map()),
    ttlSeconds: 3600,
    logger: o.logger,
    namespace: 'remora-system',
    serviceAccount: 'remora-injector',
    routes: [policyRoute(o.store)],
  });
}
