/**
 * A data listener's stack, bottom-up like linkerd's (accept → detect → http | opaque forward):
 * the direction-specific pieces (where a connection goes, which HTTP layers run) come from
 * inbound/ and outbound/; this file only strings the stages together.
 */
import type { Socket } from 'node:net';
import type { Target } from '../config/config.js';
import { NoTargetError } from '../errors.js';
import type { AcceptFn } from '../listeners.js';
import type { Logger } from '../log.js';
import type { Direction, DirectionMetrics, PeerMetrics, Protocol } from '../metrics/proxy.js';
import type { HttpStage } from '../http/server.js';
import { kConn, targetKey, trackConnection } from './connection.js';
import type { ConnectionInfo, SocketWithConn } from './connection.js';
import { detect } from './detect.js';

export type Route = 'http' | 'relay';

export interface StackSpec {
  readonly direction: Direction;
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  readonly detectTimeoutMs: number;
  /** accept stage: where this connection goes, or undefined when nowhere */
  readonly destination: (socket: Socket) => Target | undefined;
  /** detect stage: which path a detected protocol takes */
  readonly route: (protocol: Protocol) => Route;
  /** L7 stage for HTTP/1 */
  readonly http: HttpStage;
  /** opaque stage: relay bytes to the destination */
  readonly relay: (socket: Socket, conn: ConnectionInfo) => void;
  /**
   * Gate before the opaque stage (L4 authorization): false means the connection is closed
   * without a byte relayed; the gate logs and counts why. Absent: every connection passes.
   */
  readonly admit?: (socket: Socket, conn: ConnectionInfo) => boolean;
  /** Whose series this connection counts in (absent: the unknown peer's). Once per connection. */
  readonly peer?: (socket: Socket, destinationKey: string) => PeerMetrics;
}

export interface Stack {
  readonly accept: AcceptFn;
  /** open client connections, for drain */
  readonly connections: ReadonlySet<Socket>;
}

export function createStack(spec: StackSpec): Stack {
  const connections = new Set<Socket>();
  const onClose = (socket: Socket) => connections.delete(socket);
  const { direction, metrics, log, admit } = spec;

  const detected = (socket: Socket, protocol: Protocol) => {
    const conn = (socket as SocketWithConn)[kConn] as ConnectionInfo;
    conn.protocol = protocol;
    (conn.peer ?? metrics).opened[protocol].inc();
    if (spec.route(protocol) === 'http') spec.http.serve(socket);
    else if (admit === undefined || admit(socket, conn)) spec.relay(socket, conn);
    else socket.destroy();
  };
  const gone = (socket: Socket) => {
    ((socket as SocketWithConn)[kConn]?.peer ?? metrics).opened.opaque.inc();
    socket.destroy();
  };

  const accept: AcceptFn = (socket) => {
    connections.add(socket);
    trackConnection(socket, metrics, onClose);
    socket.setNoDelay(true);
    const destination = spec.destination(socket);
    if (destination === undefined) {
      const err = new NoTargetError(direction);
      log.warn(
        {
          event: 'no_target',
          code: err.code,
          direction,
          peer: `${socket.remoteAddress}:${socket.remotePort}`,
        },
        err.message,
      );
      socket.destroy();
      return;
    }
    const destinationKey = targetKey(destination);
    const conn: ConnectionInfo = {
      direction,
      destination,
      destinationKey,
      peerAddress: socket.remoteAddress ?? '',
      peerPort: socket.remotePort ?? 0,
      protocol: undefined,
      peer: spec.peer === undefined ? metrics : spec.peer(socket, destinationKey),
    };
    (socket as SocketWithConn)[kConn] = conn;
    socket.on('error', onSocketError);
    detect(socket, spec.detectTimeoutMs, detected, gone);
  };
  return { accept, connections };
}

// A reset client is normal life for a proxy; the close handler does the accounting.
function onSocketError(): void {}
