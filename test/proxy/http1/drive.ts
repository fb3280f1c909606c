/**
 * Test driver for the codec: feeds bytes to a RequestReader / ResponseReader in the chunks
 * given and returns a plain transcript (heads as strings, bodies joined, trailers), or the
 * error it stopped with. Two feeds of the same bytes must give equal transcripts.
 */
import { Http1Error } from '../../../proxy/src/errors.js';
import type { HeadLimits } from '../../../proxy/src/http1/head.js';
import { R_DATA, R_END, R_HEAD, RequestReader, ResponseReader } from '../../../proxy/src/http1/reader.js';

export const LIMITS: HeadLimits = { maxHeadBytes: 16 * 1024, maxFields: 100 };

export interface Message {
  start: string;
  fields: string[];
  body: number;
  data: string;
  trailers: string[];
  complete: boolean;
}

export interface Transcript {
  messages: Message[];
  error?: { code: string; reason: string };
  /** bytes after a tunnel head, or left unread */
  rest: number;
}

export function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    if (c <= at || c >= bytes.length) continue;
    out.push(Buffer.from(bytes.subarray(at, c)));
    at = c;
  }
  out.push(Buffer.from(bytes.subarray(at)));
  return out;
}

/** Drives a request reader over `chunks`, then the end of the stream when `eof`. */
export function readRequests(chunks: Buffer[], limits: HeadLimits = LIMITS, eof = true): Transcript {
  const r = new RequestReader(limits);
  return drive(
    r,
    chunks,
    eof,
    () => `${r.head.method} ${r.head.target()} HTTP/1.${r.head.minor}`,
    () => r.head.toArray(),
  );
}

/** Drives a response reader; `method` is the request each response answers. */
export function readResponses(
  chunks: Buffer[],
  method = 'GET',
  limits: HeadLimits = LIMITS,
  eof = true,
  upgradeAsked = false,
): Transcript {
  const r = new ResponseReader(limits);
  r.expect(method, upgradeAsked);
  return drive(
    r,
    chunks,
    eof,
    () => `HTTP/1.${r.head.minor} ${r.head.status} ${r.head.reasonPhrase()}`,
    () => r.head.toArray(),
    () => r.expect(method, upgradeAsked),
  );
}

function drive(
  r: RequestReader | ResponseReader,
  chunks: Buffer[],
  eof: boolean,
  start: () => string,
  fields: () => string[],
  onEnd?: () => void,
): Transcript {
  const t: Transcript = { messages: [], rest: 0 };
  let cur: Message | undefined;
  try {
    for (const c of chunks) {
      let off = 0;
      for (;;) {
        const ev = r.next(c, off);
        off = r.pos;
        if (ev === R_HEAD) {
          cur = { start: start(), fields: fields(), body: r.body, data: '', trailers: [], complete: false };
          t.messages.push(cur);
          if (r.body === 5) {
            t.rest += c.length - off;
            break;
          }
        } else if (ev === R_DATA) {
          (cur as Message).data += c.toString('latin1', r.dataStart, r.dataEnd);
        } else if (ev === R_END) {
          (cur as Message).complete = true;
          (cur as Message).trailers = r.decoder.trailers.count > 0 ? r.decoder.trailers.toArray() : [];
          onEnd?.();
        } else {
          if (r.body === 5) t.rest += c.length - off;
          break;
        }
      }
    }
    if (eof && r.end()) {
      const ev = r.next(Buffer.alloc(0), 0);
      if (ev === R_END && cur !== undefined && !cur.complete) cur.complete = true;
    }
  } catch (err) {
    if (!(err instanceof Http1Error)) throw err;
    t.error = { code: err.code, reason: err.reason };
  }
  return t;
}
