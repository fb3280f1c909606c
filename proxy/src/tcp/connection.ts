/**
 * Per-connection state, attached to the accepted socket once so each request on it can read
 * where it came from and where it goes without a lookup.
 */
import type { Socket } from 'node:net';
import type { Target } from '../config/config.js';
import type { Direction, DirectionMetrics, PeerMetrics, Protocol } from '../metrics/proxy.js';

export const kConn = Symbol('remora.connection');

export interface ConnectionInfo {
  readonly direction: Direction;
  readonly destination: Target;
  /** `host:port` of the destination, built once for pools, logs and errors */
  readonly destinationKey: string;
  readonly peerAddress: string;
  readonly peerPort: number;
  /** the SPIFFE identity the peer proved (the mTLS tunnel's client), resolved once at accept */
  readonly peerIdentity: string | undefined;
  protocol: Protocol | undefined;
  /** the series of this connection's peer (the mTLS caller, the destination service), resolved once
   * (absent: the direction's unknown peer) */
  readonly peer?: PeerMetrics;
}

export type SocketWithConn = Socket & { [kConn]?: ConnectionInfo };

export function connectionOf(socket: Socket): ConnectionInfo | undefined {
  return (socket as SocketWithConn)[kConn];
}

export function targetKey(t: Target): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/**
 * Counts the connection as active until it closes and adds its bytes then (one listener per
 * connection, nothing per chunk).
 */
export function trackConnection(
  socket: Socket,
  m: DirectionMetrics,
  onClose: (socket: Socket) => void,
): void {
  m.active.inc();
  socket.once('close', () => {
    m.active.dec();
    m.bytesReceived.inc(socket.bytesRead);
    m.bytesSent.inc(socket.bytesWritten);
    onClose(socket);
  });
}

/** The kernel reports the listener's own address for a connection made straight to it. */
export function isListenerItself(socket: Socket, address: string, port: number): boolean {
  return port === socket.localPort && address === unmapped(socket.localAddress);
}

function unmapped(a: string | undefined): string | undefined {
  // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d locally.
  return a?.startsWith('::ffff:') === true ? a.slice(7) : a;
}
