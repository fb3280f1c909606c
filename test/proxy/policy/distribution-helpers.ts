/**
 * Shared by the policy distribution tests (holder, file, stream): small policy documents, a
 * logger that keeps its lines, and a keep-alive HTTP client that says which connection answered.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { Writable } from 'node:stream';
import { ENV } from '../../../proxy/src/contract.js';
import { createLogger } from '../../../proxy/src/log.js';
import type { Logger } from '../../../proxy/src/log.js';

/** A document whose one policy (for every workload) denies `path` prefixes on `port`. */
export function denyPaths(port: number, paths: readonly string[], name = 'guard'): string {
  const rules = paths
    .map(
      (p, i) => `
          - name: no-${i}
            action: deny
            request: { paths: [{ prefix: ${JSON.stringify(p)} }] }`,
    )
    .join('');
  return `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: ${name}
    inbound:
      - ports: [${port}]
        authorization:
          default: allow
          rules:${rules.length > 0 ? rules : ' []'}
`;
}

/** A document denying everything on `port` (opaque TCP included: the default decides). */
export function denyAll(port: number, name = 'lockdown'): string {
  return `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: ${name}
    inbound:
      - ports: [${port}]
        authorization: { default: deny }
`;
}

/** Invalid twice over: a bad CIDR and an unknown field. */
export const INVALID = `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: broken
    inbound:
      - authorization:
          rules:
            - name: r
              action: allow
              source: { cidrs: ["10.0.0.0/33"] }
        rateLimits: {}
`;

export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

export interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  /** the client's local port: the same number means the same TCP connection */
  localPort: number;
  reused: boolean;
}

/** One keep-alive connection at most: every request goes over the same socket while it lives. */
export function keepAliveClient(port: number): { get(path: string): Promise<Answer>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    get: (path) =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
          const localPort = res.socket.localPort ?? 0;
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body,
              headers: res.headers,
              localPort,
              reused: req.reusedSocket,
            }),
          );
        });
        req.on('error', reject);
      }),
    close: () => agent.destroy(),
  };
}

/** Every proxy listener on an ephemeral loopback port, access log off. */
export const LOOPBACK: Readonly<Record<string, string>> = Object.freeze({
  [ENV.bindHost]: '127.0.0.1',
  [ENV.inboundPort]: '0',
  [ENV.outboundPort]: '0',
  [ENV.tunnelPort]: '0',
  [ENV.adminPort]: '0',
  [ENV.healthPort]: '0',
  [ENV.metricsPort]: '0',
  [ENV.accessLog]: 'off',
});

/** Runs node with `args` and only `env` (plus PATH) until it exits. */
export function runNode(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
