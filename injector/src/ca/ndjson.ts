/**
 * The server side of the injector's streams on the CA listener (discovery, policy): one
 * never-ending `application/x-ndjson` answer, a snapshot line at once, a line per change, and a
 * `{}` heartbeat so proxies and middleboxes see a live connection. Every stream starts with a
 * snapshot, which is what makes a proxy's reconnect a full resync.
 */
import type { ServerResponse } from 'node:http';

export const HEARTBEAT_MS = 15_000;

/**
 * Answers `res` with `snapshot`, then every value `subscribe` delivers; unsubscribes when the
 * client goes away.
 */
export function serveNdjson(
  res: ServerResponse,
  snapshot: unknown,
  subscribe: (send: (line: unknown) => void) => () => void,
  heartbeatMs = HEARTBEAT_MS,
): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const send = (line: unknown): void => void res.write(`${JSON.stringify(line)}\n`);
  send(snapshot);
  const unsubscribe = subscribe(send);
  const beat = setInterval(() => res.write('{}\n'), heartbeatMs);
  beat.unref();
  res.on('close', () => {
    clearInterval(beat);
    unsubscribe();
  });
}

/** A JSON 400 naming the one request form the route accepts. */
export function badRequest(res: ServerResponse, usage: string): void {
  res.writeHead(400, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: usage }));
}
