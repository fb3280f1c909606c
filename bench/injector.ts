#!/usr/bin/env node
/**
 * Webhook latency at a fixed rate: `node bench/dist/injector.js [--rate 200] [--seconds 20]`.
 * Starts the compiled remora-injector (outside Kubernetes, self-signed TLS, port 0), sends
 * AdmissionReviews of a realistic pod (two containers, three probes: injected with probe
 * rewriting) over HTTPS keep-alive on an open-loop schedule (one every 1/rate s, whether or not
 * earlier ones have answered), and reports client-side latency percentiles plus the server's own
 * histogram. The injector is stopped by PID at the end, also on Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:https';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { INJECTOR_ENV, INJECTOR_METRICS } from '@remora/proxy/contract';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'injector/dist/bin/remora-injector.js');

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`${name} needs a positive number\n`);
    process.exit(2);
  }
  return v;
}

const RATE = flag('--rate', 200);
const SECONDS = flag('--seconds', 20);
const WARMUP_SECONDS = 2;

const review = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'bench',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE',
    namespace: 'shop',
    object: {
      metadata: {
        generateName: 'web-',
        labels: { app: 'web' },
        annotations: { 'remora.dev/log-level': 'debug' },
      },
      spec: {
        containers: [
          {
            name: 'web',
            image: 'nginx',
            ports: [{ name: 'http', containerPort: 8080 }],
            livenessProbe: { httpGet: { port: 'http', path: '/live' } },
            readinessProbe: { httpGet: { port: 8080, path: '/ready' } },
          },
          { name: 'worker', image: 'worker', startupProbe: { tcpSocket: { port: 9000 } } },
        ],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    },
  },
});

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const child = spawn(process.execPath, [BIN, '--no-kubernetes', '--host', '127.0.0.1'], {
    // info, as in production: one log line per review is part of the cost measured.
    env: {
      ...process.env,
      [INJECTOR_ENV.port]: '0',
      [INJECTOR_ENV.logLevel]: 'info',
      [INJECTOR_ENV.caPort]: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = (): void => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buf: string | undefined = '';
      child.stdout.on('data', (c: Buffer) => {
        if (buf === undefined) return; // listening: the rest of the log is drained and dropped
        buf += c.toString();
        const m = /"event":"started","port":(\d+)/.exec(buf);
        if (m) {
          buf = undefined;
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`remora-injector exited (${code}) before listening`)));
      setTimeout(() => reject(new Error('remora-injector did not start within 20 s')), 20_000).unref();
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });
    const post = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/inject',
            agent,
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
              else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
            });
          },
        );
        req.on('error', reject);
        req.end(review);
      });
    const latencies: number[] = [];
    let errors = 0;
    const total = Math.round(RATE * (SECONDS + WARMUP_SECONDS));
    const warm = Math.round(RATE * WARMUP_SECONDS);
    const start = performance.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(
        post().then(
          (ms) => {
            if (i >= warm) latencies.push(ms);
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    const metrics = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve(t));
      })
        .on('error', reject)
        .end();
    });
    agent.destroy();
    const buckets = [
      ...metrics.matchAll(
        new RegExp(`${INJECTOR_METRICS.reviewDuration}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'g'),
      ),
    ].map((m) => ({
      le: m[1] as string,
      n: Number(m[2]),
    }));
    const count = buckets.find((b) => b.le === '+Inf')?.n ?? 0;
    const serverP99 = buckets.find((b) => b.n >= 0.99 * count)?.le ?? 'n/a';
    const fmt = (n: number): string => n.toFixed(2);
    process.stdout.write(
      [
        `remora-injector webhook, ${RATE} reviews/s for ${SECONDS} s (after ${WARMUP_SECONDS} s warm-up), HTTPS keep-alive, node ${process.version}`,
        `sent ${total} in ${elapsed.toFixed(1)} s, errors ${errors}`,
        `client latency ms: p50 ${fmt(percentile(latencies, 50))}  p90 ${fmt(percentile(latencies, 90))}  p99 ${fmt(percentile(latencies, 99))}  max ${fmt(latencies[latencies.length - 1] ?? NaN)}`,
        `server histogram: p99 <= ${serverP99} s (${count} reviews incl. warm-up)`,
        '',
      ].join('\n'),
    );
    if (errors > 0) process.exitCode = 1;
  } finally {
    stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/injector: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
