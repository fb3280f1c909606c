/**
 * The small HTTP servers on the control listeners (admin, health, metrics): an http.Server that
 * never binds, fed by the listener's accept callback, so who owns the socket stays separate.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AcceptFn } from '../listeners.js';

export interface ControlServer {
  readonly accept: AcceptFn;
  close(): void;
}

export type Route = (req: IncomingMessage, res: ServerResponse) => boolean;

export function controlServer(routes: readonly Route[]): ControlServer {
  const server = http.createServer({ maxHeaderSize: 8 * 1024 }, (req, res) => {
    for (const r of routes) if (r(req, res)) return;
    send(res, 404, 'text/plain', 'not found\n');
  });
  server.keepAliveTimeout = 5_000;
  return {
    accept: (socket) => server.emit('connection', socket),
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

export function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A GET route on an exact path (the query string is ignored). */
export function get(path: string, fn: (req: IncomingMessage, res: ServerResponse) => void): Route {
  return (req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q === -1 ? url : url.slice(0, q)) !== path) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain', 'method not allowed\n');
    } else {
      fn(req, res);
    }
    return true;
  };
}

/** A POST route on an exact path. */
export function post(path: string, fn: (req: IncomingMessage, res: ServerResponse) => void): Route {
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== path) return false;
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      send(res, 405, 'text/plain', 'method not allowed\n');
    } else {
      fn(req, res);
    }
    return true;
  };
}
