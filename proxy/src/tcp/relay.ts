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

/**
 * A check on the first bytes a relayed client sends: `more` (forwarded, keep looking), `pass`
 * (forwarded, stop looking), `refuse` (both sides closed, nothing of this chunk forwarded).
 */
export type FirstBytesGuard = (chunk: Buffer) => 'more' | 'pass' | 'refuse';

const kGuard = Symbol('remora.firstBytesGuard');

/** Makes the next `splice` of `client` check its first bytes (tcp/stack.ts: the silent fallback). */
export function guardFirstBytes(client: Socket, guard: FirstBytesGuard): void {
  (client as Socket & { [kGuard]?: FirstBytesGuard })[kGuard] = guard;
}

/** Pipes two connected sockets into each other until either side is gone. */
export function splice(a: Socket, b: Socket, onBError: (err: Error) => void): void {
  const guard = (a as Socket & { [kGuard]?: FirstBytesGuard })[kGuard];
  if (guard === undefined) a.pipe(b);
  else {
    // The first bytes are few (a first line at most): written without backpressure, then piped.
    const first = (chunk: Buffer) => {
      const verdict = guard(chunk);
      if (verdict === 'refuse') {
        a.off('data', first);
        a.destroy();
        b.destroy();
        return;
      }
      b.write(chunk);
      if (verdict === 'pass') {
        a.off('data', first);
        a.pipe(b);
      }
    };
    a.on('data', first);
    // pipe() would pass a half-close on; until it is set up, do it here.
    a.once('end', () => {
      if (a.listeners('data').includes(first)) b.end();
    });
  }
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
