/**
 * Opaque TCP relay: bytes both ways, half-close passed on, both sides torn down together.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Target } from '../config/config.js';

export function relay(client: Socket, target: Target, onUpstreamError: (err: Error) => void): void {
  const upstream = net.connect({
    host: target.host,
    port: target.port,
    allowHalfOpen: true,
    noDelay: true,
    ...(target.localAddress !== undefined ? { localAddress: target.localAddress } : {}),
  });
  splice(client, upstream, onUpstreamError);
}

/** Pipes two connected sockets into each other until either side is gone. */
export function splice(a: Socket, b: Socket, onBError: (err: Error) => void): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', (err) => {
    onBError(err);
    a.destroy();
  });
  // A reset tears the other side down; a clean close only ends it, so bytes still queued for it
  // are delivered (a half-close travels through pipe()).
  a.on('close', (hadError) => (hadError ? b.destroy() : b.end()));
  b.on('close', (hadError) => (hadError ? a.destroy() : a.end()));
  a.resume();
}
