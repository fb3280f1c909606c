/**
 * Node's own HTTP parser (llhttp, strict: what node:http used with insecureHTTPParser off),
 * reached through `_http_common`, for differential checks: whatever it refuses, the codec
 * must refuse too. Only the parser: node:http's server adds nothing here (Remora set
 * requireHostHeader off and counted header fields itself).
 */
import { createRequire } from 'node:module';

interface NodeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [k: number]: unknown;
}
interface NodeParserClass {
  new (): NodeParser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

const { HTTPParser } = createRequire(import.meta.url)('_http_common') as { HTTPParser: NodeParserClass };

/** Does Node's strict parser refuse these bytes (as one message stream, then EOF)? */
export function nodeRefuses(bytes: Buffer, side: 'request' | 'response', maxHeaderSize: number): boolean {
  const p = new HTTPParser();
  p.initialize(side === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, 0);
  const noop = () => 0;
  for (const k of [
    HTTPParser.kOnMessageBegin,
    HTTPParser.kOnHeaders,
    HTTPParser.kOnHeadersComplete,
    HTTPParser.kOnBody,
    HTTPParser.kOnMessageComplete,
    HTTPParser.kOnExecute,
  ])
    p[k] = noop;
  try {
    const r = p.execute(bytes);
    return r instanceof Error;
  } finally {
    p.close();
  }
}
