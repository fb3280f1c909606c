/**
 * A data listener's stack, bottom-up like linkerd's (accept → detect → http | opaque forward):
 * the direction-specific pieces (where a connection goes, which HTTP layers run) come from
 * inbound/ and outbound/; this file only strings the stages together.
 */
import type { Socket } from 'node:net';
import type { Target } from '../config/config.js';
import { BadRequestError, NoTargetError } from '../errors.js';
import type { AcceptFn } from '../listeners.js';
import type { Logger } from '../log.js';
import type { Direction, DirectionMetrics, PeerMetrics } from '../metrics/proxy.js';
import { closingAnswer } from '../http/local.js';
import type { HttpStage } from '../http/stage.js';
import type { Http2Stage } from '../http2/server.js';
import { kConn, targetKey, trackConnection } from './connection.js';
import type { ConnectionInfo, SocketWithConn } from './connection.js';
import { rescue } from '../rescue.js';
import { MAX_FIRST_LINE, countedAs, detect, sniff } from './detect.js';
import type { Route, Sniffed } from './detect.js';
import { guardFirstBytes } from './relay.js';
import type { FirstBytesGuard } from './relay.js';

export type { Route } from './detect.js';

/** How long a refused connection may go on sending after its 400 before it is cut. */
const REFUSE_LINGER_MS = 2000;

/**
 * What a port is declared to speak (config and annotation), or `http` when L7 policy governs it:
 * `opaque` skips detection (server-speaks-first protocols); `http` refuses what is not HTTP/1;
 * `detect` decides from the first bytes.
 */
export type PortProtocol = 'opaque' | 'http' | 'detect';

export interface StackSpec {
  readonly direction: Direction;
  readonly metrics: DirectionMetrics;
  readonly log: Logger;
  readonly detectTimeoutMs: number;
  /** accept stage: where this connection goes, or undefined when nowhere */
  readonly destination: (socket: Socket) => Target | undefined;
  /** detect stage: which path a detected protocol takes (`strict`: the port must speak HTTP) */
  readonly route: (sniffed: Sniffed, strict: boolean) => Route;
  /** what the connection's port speaks; asked at accept and again when detection decides */
  readonly protocolOf?: (conn: ConnectionInfo) => PortProtocol;
  /** L7 stage for HTTP/1 */
  readonly http: HttpStage;
  /** L7 stage for HTTP/2 (h2c prior knowledge); absent: HTTP/2 is relayed as opaque TCP */
  readonly http2?: Http2Stage;
  /** opaque stage: relay bytes to the destination */
  readonly relay: (socket: Socket, conn: ConnectionInfo) => void;
  /**
   * Gate before the opaque stage (L4 authorization): false means the connection is closed
   * without a byte relayed; the gate logs and counts why. Absent: every connection passes.
   */
  readonly admit?: (socket: Socket, conn: ConnectionInfo) => boolean;
  /** The identity the connection's peer proved (the mTLS tunnel), once per connection. */
  readonly identity?: (socket: Socket) => string | undefined;
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

  const protocolOf = spec.protocolOf;
  const opaque = (socket: Socket, conn: ConnectionInfo) => {
    if (admit === undefined || admit(socket, conn)) spec.relay(socket, conn);
    else socket.destroy();
  };
  const detected = (socket: Socket, sniffed: Sniffed) => {
    const conn = (socket as SocketWithConn)[kConn] as ConnectionInfo;
    // Asked now, not at accept: a policy update during detection counts.
    const strict = protocolOf !== undefined && protocolOf(conn) === 'http';
    let route = spec.route(sniffed, strict);
    if (route === 'http2' && spec.http2 === undefined) route = strict ? 'close' : 'relay';
    const protocol = countedAs(sniffed, route);
    conn.protocol = protocol;
    (conn.peer ?? metrics).opened[protocol].inc();
    if (route === 'http') spec.http.serve(socket);
    else if (route === 'http2') (spec.http2 as Http2Stage).serve(socket);
    else if (route === 'relay') {
      // Silent past the timeout, relayed as server-speaks-first: what the client then sends is
      // still looked at until it decides, so a broken request line is not relayed either.
      if (sniffed === 'silent') guardFirstBytes(socket, lateGuard(socket, conn));
      opaque(socket, conn);
    } else refuse(socket, conn, sniffed, route, strict);
  };
  const lateGuard = (socket: Socket, conn: ConnectionInfo): FirstBytesGuard => {
    let seen: Buffer | undefined;
    return (chunk) => {
      seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const s = sniff(seen);
      if (s === 'http-broken') {
        if (log.isLevelEnabled('info'))
          log.info(
            {
              event: 'not_http',
              direction,
              detected: s,
              port: conn.destination.port,
              strict: false,
              late: true,
              peer: `${conn.peerAddress}:${conn.peerPort}`,
              answer: 'close',
            },
            'refused: a request line with a control byte, after the detection timeout',
          );
        return 'refuse';
      }
      return s === undefined && seen.length < MAX_FIRST_LINE ? 'more' : 'pass';
    };
  };
  const refuse = (socket: Socket, conn: ConnectionInfo, sniffed: Sniffed, route: Route, strict: boolean) => {
    const why =
      sniffed === 'http-broken'
        ? 'a request line with a control byte or one that is not HTTP/1.x'
        : sniffed === 'http-like'
          ? 'a request method this proxy cannot parse, on a port that must speak HTTP'
          : `${sniffed} on a port that must speak HTTP`;
    if (log.isLevelEnabled('info'))
      log.info(
        {
          event: 'not_http',
          direction,
          detected: sniffed,
          port: conn.destination.port,
          strict,
          peer: `${conn.peerAddress}:${conn.peerPort}`,
          answer: route === 'reject' ? 400 : 'close',
        },
        `refused: ${why}`,
      );
    if (route === 'close') {
      // The L4 gate still asks first, so a denial is counted and logged as one.
      if (admit !== undefined) admit(socket, conn);
      socket.destroy();
      return;
    }
    const r = rescue(new BadRequestError(why), '');
    (conn.peer ?? metrics).requests(r.status).inc();
    // Read and drop what the client still sends, so closing does not reset the answer away;
    // a client that never stops sending is cut after a bound.
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), REFUSE_LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
    socket.end(closingAnswer(r));
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
      peerIdentity: spec.identity === undefined ? undefined : spec.identity(socket),
      protocol: undefined,
      peer: spec.peer === undefined ? metrics : spec.peer(socket, destinationKey),
    };
    (socket as SocketWithConn)[kConn] = conn;
    socket.on('error', onSocketError);
    if (protocolOf !== undefined && protocolOf(conn) === 'opaque') {
      conn.protocol = 'opaque';
      (conn.peer ?? metrics).opened.opaque.inc();
      opaque(socket, conn);
      return;
    }
    detect(socket, spec.detectTimeoutMs, detected, gone);
  };
  return { accept, connections };
}

// A reset client is normal life for a proxy; the close handler does the accounting.
function onSocketError(): void {}
