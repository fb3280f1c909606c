/**
 * The request message the HTTP/1 server builds: Node's, plus a count of the body bytes the
 * parser pushed (after chunked decoding). One addition per body chunk, no listener: reading
 * `socket.bytesRead` around a request misses what the parser read with the head.
 */
import { IncomingMessage } from 'node:http';

export class CountingIncomingMessage extends IncomingMessage {
  /** request body bytes received so far (the payload, not its chunked framing) */
  bodyBytes = 0;

  /** RequestBody.bytesReceived (http/exchange.ts): the node stage's request is its body. */
  get bytesReceived(): number {
    return this.bodyBytes;
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) this.bodyBytes += (chunk as Buffer).length;
    return super.push(chunk, encoding);
  }
}
