/**
 * Shared by the policy distribution tests (holder, file, stream): small policy documents, a
 * logger that keeps its lines, and a keep-alive HTTP client that says which connection answered.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
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
