/**
 * The admission webhook: fastify over HTTPS doing I/O only (size-capped body, decode, call
 * `evaluate`, encode), plus /healthz, /readyz and /metrics. Everything that touches the world
 * (TLS material, the mesh config, the namespace lister, the logger) is passed in.
 */
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { INJECTOR, METRICS_PATH } from '@remora/proxy/contract';
import type { MeshConfig } from '../config/mesh.js';
import { MalformedReviewError, httpStatus } from '../errors.js';
import { evaluate } from '../inject/evaluate.js';
import type { NamespaceInfo } from '../inject/types.js';
import { InjectorMetrics } from './metrics.js';
import type { ReviewResult } from './metrics.js';
import { allow, deny, isPodCreate, parseReview, podOf } from './review.js';

/** 3 MiB: the API server's own request limit; a Pod is far smaller. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Looks a namespace up (an informer cache in Kubernetes, a map in tests). */
export type NamespaceLister = (
  name: string,
) => Promise<NamespaceInfo | undefined> | NamespaceInfo | undefined;

export interface TlsMaterial {
  key: string | Buffer;
  cert: string | Buffer;
}

export interface WebhookOptions {
  host?: string;
  port: number;
  tls: TlsMaterial;
  mesh: () => MeshConfig;
  namespaces: NamespaceLister;
  logger: Logger;
  /** Readiness beyond "listening": config loaded, caches synced. */
  ready?: () => boolean;
  metrics?: InjectorMetrics;
}

export interface Webhook {
  app: FastifyInstance;
  port: number;
  metrics: InjectorMetrics;
  /** Swaps the serving certificate for new connections (renewal). */
  setTls(tls: TlsMaterial): void;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: unknown;
  result: ReviewResult;
}

async function answer(raw: Buffer | undefined, o: WebhookOptions, metrics: InjectorMetrics): Promise<Answer> {
  let body: unknown;
  try {
    if (!raw || raw.length === 0) throw new MalformedReviewError('empty body (expected an AdmissionReview)');
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new MalformedReviewError(`body is not valid JSON: ${(err as Error).message}`);
    }
    const req = parseReview(body);
    if (!isPodCreate(req)) return { status: 200, body: allow(req.uid), result: 'ignored' };
    const { pod, namespace, name } = podOf(req);
    const ns = (await o.namespaces(namespace)) ?? { name: namespace, labels: {} };
    const outcome = evaluate(pod, ns, o.mesh());
    const log = { uid: req.uid, namespace, pod: name, dryRun: req.dryRun };
    // Dry runs get the real answer (the user sees the injected pod) but are not counted as
    // injections or skips: no pod will exist.
    if (outcome.result === 'rejected') {
      const message = `remora: pod ${namespace}/${name} rejected: ${outcome.errors.join('; ')}`;
      o.logger.warn({ ...log, event: 'pod_rejected', errors: outcome.errors }, 'pod rejected');
      return { status: 200, body: deny(req.uid, message), result: req.dryRun ? 'dry_run' : 'rejected' };
    }
    if (outcome.result === 'skipped') {
      if (!req.dryRun) metrics.skip(outcome.reason);
      o.logger.info({ ...log, event: 'pod_skipped', reason: outcome.reason }, 'pod skipped');
      return { status: 200, body: allow(req.uid), result: req.dryRun ? 'dry_run' : 'skipped' };
    }
    if (!req.dryRun) metrics.injection();
    o.logger.info({ ...log, event: 'pod_injected', reason: outcome.reason }, 'pod injected');
    return { status: 200, body: allow(req.uid, outcome.patch), result: req.dryRun ? 'dry_run' : 'injected' };
  } catch (err) {
    if (err instanceof MalformedReviewError) {
      o.logger.warn({ event: 'review_malformed', reason: err.message }, 'malformed AdmissionReview');
      return { status: httpStatus(err), body: { error: err.message, code: err.code }, result: 'malformed' };
    }
    throw err;
  }
}

export async function startWebhook(o: WebhookOptions): Promise<Webhook> {
  const metrics = o.metrics ?? new InjectorMetrics();
  const app = Fastify({
    https: { key: o.tls.key, cert: o.tls.cert },
    bodyLimit: MAX_BODY_BYTES,
    logger: false,
    // A slow client cannot hold a request open: the API server's own timeout is at most 30 s.
    requestTimeout: 30_000,
    return503OnClosing: true,
  });
  app.removeAllContentTypeParsers();
  // Parse the JSON ourselves: a malformed review gets a reason we control, not a framework's.
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => {
    done(null, body);
  });
  app.setErrorHandler((err: { statusCode?: number; message?: string; code?: string }, _req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) o.logger.error({ err, event: 'webhook_error' }, 'webhook error');
    else if (status === 413 || status === 400) metrics.review('malformed');
    void reply.code(status).send({
      error: status === 413 ? `body larger than ${MAX_BODY_BYTES} bytes` : err.message,
      code: err.code,
    });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url}` });
  });

  app.post(INJECTOR.injectPath, async (req, reply) => {
    const start = process.hrtime.bigint();
    const a = await answer(req.body as Buffer | undefined, o, metrics);
    metrics.review(a.result, Number(process.hrtime.bigint() - start) / 1e9);
    return reply.code(a.status).header('content-type', 'application/json').send(JSON.stringify(a.body));
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const ok = o.ready ? o.ready() : true;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not ready' });
  });
  app.get(METRICS_PATH, async (_req, reply) =>
    reply.header('content-type', 'text/plain; version=0.0.4').send(metrics.render()),
  );

  await app.listen({ host: o.host ?? '0.0.0.0', port: o.port });
  const port = (app.server.address() as AddressInfo).port;
  return {
    app,
    port,
    metrics,
    setTls(tls) {
      (app.server as unknown as HttpsServer).setSecureContext({ key: tls.key, cert: tls.cert });
    },
    close: () => app.close(),
  };
}
