/**
 * The cap on concurrent downstream connections of one listener (REMORA_MAX_CONNECTIONS): a
 * hostile client that opens connections without end meets a bound instead of exhausting the
 * process's file descriptors and memory. Over the cap a connection is closed at accept, before
 * a byte is read (answering HTTP would mean reading and detecting first, which is what a flood
 * must not cost), counted by listener, and logged at most once a second per listener.
 */
import type { Socket } from 'node:net';
import type { AcceptFn } from '../listeners.js';
import type { Logger } from '../log.js';
import type { CounterChild } from '../metrics/registry.js';

const LOG_EVERY_MS = 1000;

export function capConnections(
  listener: string,
  max: number,
  accept: AcceptFn,
  overCap: CounterChild,
  log: Logger,
): AcceptFn {
  let open = 0;
  let loggedAt = 0;
  let refusedSinceLog = 0;
  const closed = (): void => {
    open -= 1;
  };
  return (socket: Socket) => {
    if (open >= max) {
      overCap.inc();
      refusedSinceLog += 1;
      const now = Date.now();
      if (now - loggedAt >= LOG_EVERY_MS) {
        log.warn(
          { event: 'connections_over_cap', listener, max, refused: refusedSinceLog },
          `${listener}: ${max} connections open, new ones are closed at accept`,
        );
        loggedAt = now;
        refusedSinceLog = 0;
      }
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    open += 1;
    socket.once('close', closed);
    accept(socket);
  };
}
