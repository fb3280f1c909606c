/**
 * Outbound forward stage: HTTP requests go to the original destination through the pooled
 * forwarder; opaque connections are relayed to it byte for byte. (Later: endpoint choice and the
 * mTLS tunnel to meshed endpoints, DESIGN §3.)
 */
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { ConnectionInfo } from '../tcp/connection.js';
import { relay } from '../tcp/relay.js';

export function outboundRelay(log: Logger): (socket: Socket, conn: ConnectionInfo) => void {
  return (socket, conn) =>
    relay(socket, conn.destination, (err) =>
      log.warn(
        {
          event: 'relay_error',
          direction: 'outbound',
          protocol: conn.protocol,
          upstream: conn.destinationKey,
          err,
        },
        'cannot relay to the destination',
      ),
    );
}
