/**
 * A small fake Kubernetes API server on loopback for the client-node calls: no API server runs
 * here, so this is the edge we mock. Routes are handlers keyed by "METHOD path"; every request is
 * recorded. Watches stream JSON lines and stay open until the test pushes events or closes.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: IncomingMessage['headers'];
}

export type Handler = (req: Recorded, res: ServerResponse) => void;

export class FakeApiServer {
  readonly requests: Recorded[] = [];
  private readonly routes = new Map<string, Handler>();
  private readonly watches: ServerResponse[] = [];
  private server: Server | undefined;
  port = 0;

  route(method: string, path: string, handler: Handler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  static json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** Keeps a watch response open; `push` sends events to every open watch. */
  holdWatch(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    this.watches.push(res);
  }

  push(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown): void {
    for (const w of this.watches) w.write(`${JSON.stringify({ type, object })}\n`);
  }

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://fake');
        const text = Buffer.concat(chunks).toString();
        const rec: Recorded = {
          method: req.method ?? '',
          path: url.pathname,
          query: url.searchParams,
          body: text ? (JSON.parse(text) as unknown) : undefined,
          headers: req.headers,
        };
        this.requests.push(rec);
        const watching = url.searchParams.get('watch') === 'true' ? ' watch' : '';
        const h = this.routes.get(`${rec.method} ${rec.path}${watching}`);
        if (h) h(rec, res);
        else
          FakeApiServer.json(res, 404, {
            kind: 'Status',
            code: 404,
            message: `no route ${rec.method} ${rec.path}`,
          });
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'test-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    return kc;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) w.destroy();
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}
