/**
 * Inbound forward stage: HTTP requests go to the app through the pooled forwarder; opaque
 * connections are relayed to it byte for byte.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { relay } from '../tcp/relay.js';

export function inboundRelay(log: Logger): (socket: Socket, conn: ConnectionInfo) => void {
  return (socket, conn) =>
    relay(socket, conn.destination, (err) =>
      log.warn(
        {
          event: 'relay_error',
          direction: 'inbound',
          protocol: conn.protocol,
          upstream: conn.destinationKey,
          err,
        },
        'cannot relay to the app',
      ),
    );
}
