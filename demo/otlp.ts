/**
 * A real OTLP/HTTP trace receiver, used by the demo (`demo/collector.ts`) and by the tests
 * (through `test/helpers/otlp-receiver.ts`): an HTTP server that accepts
 * `POST /v1/traces` with `application/x-protobuf` (gzip or not) and decodes the
 * ExportTraceServiceRequest with a minimal protobuf wire-format reader, so the demo and the tests show
 * what a collector would really receive. Only the fields tests look at are decoded; the rest is skipped
 * by wire type, as any protobuf reader does with unknown fields.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttrValue = string | number | boolean | bigint | Uint8Array | AttrValue[] | undefined;

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttrValue>;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  resource: Record<string, AttrValue>;
  scope: string;
}

export const SPAN_KIND = Object.freeze({ internal: 1, server: 2, client: 3 });

/** A protobuf wire-format reader over one message's bytes. */
class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf: varint too long');
    }
  }
  fixed64(): bigint {
    const v = Buffer.from(this.take(8)).readBigUInt64LE(0);
    return v;
  }
  double(): number {
    return Buffer.from(this.take(8)).readDoubleLE(0);
  }
  bytes(): Uint8Array {
    return this.take(Number(this.varint()));
  }
  string(): string {
    return Buffer.from(this.bytes()).toString('utf8');
  }
  take(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new Error('protobuf: truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** Reads a tag: field number and wire type. */
  tag(): { field: number; wire: number } {
    const t = Number(this.varint());
    return { field: t >>> 3, wire: t & 7 };
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.take(8);
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.take(4);
    else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
}

/** Calls `on(field, wire, reader)` for every field; `on` returns false to have it skipped. */
function each(buf: Uint8Array, on: (field: number, wire: number, r: Reader) => boolean): void {
  const r = new Reader(buf);
  while (!r.done) {
    const { field, wire } = r.tag();
    if (!on(field, wire, r)) r.skip(wire);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function anyValue(buf: Uint8Array): AttrValue {
  let v: AttrValue;
  each(buf, (field, wire, r) => {
    if (field === 1 && wire === 2) v = r.string();
    else if (field === 2 && wire === 0) v = r.varint() !== 0n;
    else if (field === 3 && wire === 0) v = Number(BigInt.asIntN(64, r.varint()));
    else if (field === 4 && wire === 1) v = r.double();
    else if (field === 5 && wire === 2) {
      const arr: AttrValue[] = [];
      each(r.bytes(), (f, w, rr) => (f === 1 && w === 2 ? (arr.push(anyValue(rr.bytes())), true) : false));
      v = arr;
    } else if (field === 7 && wire === 2) v = r.bytes();
    else return false;
    return true;
  });
  return v;
}

function keyValue(buf: Uint8Array, into: Record<string, AttrValue>): void {
  let key = '';
  let value: AttrValue;
  each(buf, (field, wire, r) => {
    if (field === 1 && wire === 2) key = r.string();
    else if (field === 2 && wire === 2) value = anyValue(r.bytes());
    else return false;
    return true;
  });
  into[key] = value;
}

function attributesOf(buf: Uint8Array, attrField: number): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  each(buf, (field, wire, r) =>
    field === attrField && wire === 2 ? (keyValue(r.bytes(), out), true) : false,
  );
  return out;
}

function span(buf: Uint8Array, resource: Record<string, AttrValue>, scope: string): DecodedSpan {
  const s: DecodedSpan = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    traceState: '',
    name: '',
    kind: 0,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    statusCode: 0,
    statusMessage: '',
    resource,
    scope,
  };
  each(buf, (field, wire, r) => {
    if (field === 1 && wire === 2) s.traceId = hex(r.bytes());
    else if (field === 2 && wire === 2) s.spanId = hex(r.bytes());
    else if (field === 3 && wire === 2) s.traceState = r.string();
    else if (field === 4 && wire === 2) s.parentSpanId = hex(r.bytes());
    else if (field === 5 && wire === 2) s.name = r.string();
    else if (field === 6 && wire === 0) s.kind = Number(r.varint());
    else if (field === 7 && wire === 1) s.startTimeUnixNano = r.fixed64();
    else if (field === 8 && wire === 1) s.endTimeUnixNano = r.fixed64();
    else if (field === 9 && wire === 2) keyValue(r.bytes(), s.attributes);
    else if (field === 15 && wire === 2) {
      each(r.bytes(), (f, w, rr) => {
        if (f === 2 && w === 2) s.statusMessage = rr.string();
        else if (f === 3 && w === 0) s.statusCode = Number(rr.varint());
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return s;
}

/** Decodes an ExportTraceServiceRequest into a flat list of spans. */
export function decodeExportTraceRequest(buf: Uint8Array): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  each(buf, (field, wire, r) => {
    if (field !== 1 || wire !== 2) return false;
    const rsBuf = r.bytes();
    let resource: Record<string, AttrValue> = {};
    const scopeSpans: Uint8Array[] = [];
    each(rsBuf, (f, w, rr) => {
      if (f === 1 && w === 2) resource = attributesOf(rr.bytes(), 1);
      else if (f === 2 && w === 2) scopeSpans.push(rr.bytes());
      else return false;
      return true;
    });
    for (const ss of scopeSpans) {
      let scope = '';
      const spanBufs: Uint8Array[] = [];
      each(ss, (f, w, rr) => {
        if (f === 1 && w === 2) {
          each(rr.bytes(), (sf, sw, sr) => (sf === 1 && sw === 2 ? ((scope = sr.string()), true) : false));
        } else if (f === 2 && w === 2) spanBufs.push(rr.bytes());
        else return false;
        return true;
      });
      for (const sb of spanBufs) spans.push(span(sb, resource, scope));
    }
    return true;
  });
  return spans;
}

export interface OtlpReceiver {
  readonly url: string;
  readonly port: number;
  /** Every span decoded so far, in arrival order. */
  readonly spans: DecodedSpan[];
  /** Requests that were not a valid protobuf export (should stay 0), and why the last one failed. */
  readonly rejected: number;
  readonly lastError: Error | undefined;
  readonly requests: number;
  /** Resolves once `pred(spans)` holds (checked on each export), or rejects after `ms`. */
  waitFor(pred: (spans: DecodedSpan[]) => boolean, ms?: number): Promise<DecodedSpan[]>;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Accept and drop without decoding (benchmarks). */
  discard?: boolean;
  /** Where to listen: 127.0.0.1 and a free port unless set. */
  host?: string;
  port?: number;
  /** Called with the spans of each decoded export, as they arrive. */
  onSpans?: (spans: readonly DecodedSpan[]) => void;
}

export async function startOtlpReceiver(opts: ReceiverOptions = {}): Promise<OtlpReceiver> {
  const spans: DecodedSpan[] = [];
  const waiters = new Set<() => void>();
  let rejected = 0;
  let requests = 0;
  let lastError: Error | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        rejected++;
        res.writeHead(404).end();
        return;
      }
      if (opts.discard) {
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        return;
      }
      try {
        if (!String(req.headers['content-type']).startsWith('application/x-protobuf')) {
          throw new Error(`unexpected content-type ${req.headers['content-type']}`);
        }
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const decoded = decodeExportTraceRequest(body);
        spans.push(...decoded);
        opts.onSpans?.(decoded);
        // An empty ExportTraceServiceResponse: full success.
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      } catch (err) {
        rejected++;
        lastError = err as Error;
        res.writeHead(400).end();
      }
      for (const w of waiters) w();
    });
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    spans,
    get rejected() {
      return rejected;
    },
    get lastError() {
      return lastError;
    },
    get requests() {
      return requests;
    },
    waitFor(pred, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!pred(spans)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(spans);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`OTLP receiver: condition not met after ${ms} ms; got ${spans.length} spans`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const KIND_NAMES: Readonly<Record<number, string>> = {
  1: 'internal',
  2: 'server',
  3: 'client',
  4: 'producer',
  5: 'consumer',
};

/**
 * One trace as an indented tree (parents before children, siblings by start time), for the demo
 * and for test failure messages:
 *
 *   trace 4bf92f3577b34da6a3ce929d0e0e4736
 *   └─ reviews client GET /ratings/7 200 1.84 ms
 *      └─ ratings server GET /ratings/7 200 0.91 ms
 */
export function formatTraceTree(spans: readonly DecodedSpan[], traceId: string): string {
  const inTrace = spans.filter((s) => s.traceId === traceId);
  const ids = new Set(inTrace.map((s) => s.spanId));
  const children = new Map<string, DecodedSpan[]>();
  for (const s of inTrace) {
    // A span whose parent was not exported (the caller's) is a root of what we have.
    const parent = ids.has(s.parentSpanId) ? s.parentSpanId : '';
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const lines: string[] = [`trace ${traceId}`];
  const walk = (parent: string, depth: number): void => {
    const kids = [...(children.get(parent) ?? [])].sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1,
    );
    for (const s of kids) {
      const ms = Number(s.endTimeUnixNano - s.startTimeUnixNano) / 1e6;
      const status = s.attributes['http.response.status_code'] ?? '-';
      lines.push(
        `${'   '.repeat(depth)}└─ ${String(s.resource['service.name'] ?? '?')} ${KIND_NAMES[s.kind] ?? s.kind} ${s.name} ${String(s.attributes['url.path'] ?? '')} ${String(status)} ${ms.toFixed(2)} ms${s.statusCode === 2 ? ' ERROR' : ''}`,
      );
      walk(s.spanId, depth + 1);
    }
  };
  walk('', 0);
  return lines.join('\n');
}
