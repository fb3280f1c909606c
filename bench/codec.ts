/**
 * HTTP/1.1 head parsing, ns per head and bytes allocated per head (docs/proxy.md "HTTP/1.1
 * codec"): the project's codec (proxy/src/http1/) against llhttp as undici ships it (wasm,
 * with and without SIMD) and Node's own parser (llhttp compiled in, through `_http_common`).
 * Each parser ends with what a proxy needs from a head: the method/status, the target, and
 * every field's name and value located (ours: byte ranges; llhttp: offsets from its callbacks,
 * no copies; Node: the strings it always makes).
 *
 *   npm run build && npx tsc -p bench && node bench/dist/codec.js [--quick]
 */
import { createRequire } from 'node:module';
import { PerformanceObserver } from 'node:perf_hooks';
import {
  BODY_NONE,
  R_NEED_MORE,
  RequestReader,
  ResponseReader,
  encodeRequestHead,
  requestBody,
} from '@remora/proxy/http1';
import type { EncodeOptions } from '@remora/proxy/http1';

const require = createRequire(import.meta.url);
const quick = process.argv.includes('--quick');

const HEADS: Record<string, string> = {
  'curl GET (4 fields, 126 B)':
    'GET /api/v1/items?id=42 HTTP/1.1\r\nHost: orders.shop.svc.cluster.local:8080\r\nUser-Agent: curl/8.5.0\r\n' +
    'Accept: */*\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n',
  'browser POST (13 fields, ~800 B)':
    'POST /checkout/cart/add?sku=123456&qty=2 HTTP/1.1\r\nHost: shop.example.com\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n' +
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n' +
    'Accept-Encoding: gzip, deflate, br, zstd\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n' +
    'Origin: https://shop.example.com\r\nConnection: keep-alive\r\nReferer: https://shop.example.com/product/123456\r\n' +
    'Cookie: session=8f14e45fceea167a5a36dedd4bea2543; cart=c9f0f895fb98ab9159f51fd0297e236d; consent=1; theme=dark\r\n' +
    'Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n\r\nsku=123456&qty=2&gift=false',
};
const RESPONSE = 'response 200 (5 fields, 160 B)';
const RESPONSE_HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 27\r\n' +
  'Date: Thu, 03 Dec 2026 11:00:00 GMT\r\nServer: nginx/1.26.2\r\nCache-Control: no-store\r\n\r\n{"id":42,"items":[1,2,3]}\r\n';

/** ns per call and heap bytes per call of `fn` over `n` calls; GC-free runs only count bytes. */
function measure(fn: () => void, n: number): { ns: number; bytes: number | undefined } {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(); // warm up: optimized code, not the interpreter
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    // CPU time, not wall time: the cores are shared, and a descheduled round would count
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const c = process.cpuUsage(c0);
    best = Math.min(best, ((c.user + c.system) * 1e3) / n);
  }
  // Allocation: heap growth over a run short enough to fit the young generation; a run that
  // collected garbage meanwhile is not counted.
  let gcs = 0;
  const obs = new PerformanceObserver((l) => (gcs += l.getEntries().length));
  obs.observe({ entryTypes: ['gc'] });
  const m = 2_000;
  const h0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < m; i++) fn();
  const h1 = process.memoryUsage().heapUsed;
  obs.disconnect();
  return { ns: best, bytes: gcs === 0 ? Math.max(0, (h1 - h0) / m) : undefined };
}

// --- ours ---------------------------------------------------------------------------------
const limits = { maxHeadBytes: 16 * 1024, maxFields: 100 };
const reqReader = new RequestReader(limits);
const resReader = new ResponseReader(limits);
let sink = 0;
/** The whole message: its head, then its body (if any) up to the end. */
function drain(r: RequestReader | ResponseReader, b: Buffer, off = 0): void {
  while (r.next(b, off) !== R_NEED_MORE) off = r.pos;
}
function oursRequest(b: Buffer): void {
  drain(reqReader, b);
  sink += reqReader.head.count;
}
function oursResponse(b: Buffer): void {
  resReader.expect('GET', false);
  drain(resReader, b);
  sink += resReader.head.count;
}
const encodeOpts: EncodeOptions = {
  framing: BODY_NONE,
  length: 0,
  extra: ['x-remora-peer-identity', 'spiffe://td/ns/a/sa/b'],
};
function oursForward(b: Buffer): void {
  reqReader.next(b, 0);
  encodeOpts.framing = requestBody(reqReader.head);
  encodeOpts.length = reqReader.head.contentLength;
  sink += encodeRequestHead(reqReader.head, encodeOpts).length;
  drain(reqReader, b, reqReader.pos);
}

// --- llhttp wasm, as undici ships it ------------------------------------------------------
// lib ES2023 has no WebAssembly types; the two calls used here.
declare const WebAssembly: {
  Module: new (bytes: Buffer) => object;
  Instance: new (mod: object, imports: object) => { exports: unknown };
};
interface Llhttp {
  memory: { buffer: ArrayBuffer };
  malloc(n: number): number;
  llhttp_alloc(type: number): number;
  llhttp_execute(p: number, at: number, len: number): number;
}
/**
 * llhttp from undici's wasm. `views`: each field name and value also becomes a Buffer view of
 * the wasm memory, as undici's client does (the cost of using the parse, not only making it).
 */
function llhttp(
  simd: boolean,
  views = false,
): { parse: (b: Buffer) => void; type: (t: number) => void } | undefined {
  let mod: object;
  try {
    mod = new WebAssembly.Module(
      require(simd ? 'undici/lib/llhttp/llhttp_simd-wasm.js' : 'undici/lib/llhttp/llhttp-wasm.js') as Buffer,
    );
  } catch {
    return undefined;
  }
  // Offsets only, as a zero-copy consumer would keep them.
  const fields = new Int32Array(400);
  let nf = 0;
  let list: Buffer[] = [];
  let memory: ArrayBuffer | undefined;
  const cb = views
    ? (_p: number, at: number, len: number) => {
        list.push(Buffer.from(memory as ArrayBuffer, at, len));
        nf++;
        return 0;
      }
    : (_p: number, at: number, len: number) => {
        fields[nf++] = at;
        fields[nf++] = len;
        return 0;
      };
  const inst = new WebAssembly.Instance(mod, {
    env: {
      wasm_on_url: cb,
      wasm_on_status: cb,
      wasm_on_message_begin: () => 0,
      wasm_on_header_field: cb,
      wasm_on_header_value: cb,
      wasm_on_headers_complete: () => 0,
      wasm_on_body: () => 0,
      wasm_on_message_complete: () => 0,
    },
  });
  const ll = inst.exports as unknown as Llhttp;
  memory = ll.memory.buffer;
  let ptr = ll.llhttp_alloc(1);
  const buf = ll.malloc(64 * 1024);
  return {
    type: (t) => (ptr = ll.llhttp_alloc(t)),
    parse: (b) => {
      nf = 0;
      if (views) {
        list = [];
        memory = ll.memory.buffer; // a new ArrayBuffer whenever wasm memory grew
      }
      // undici copies every chunk into wasm memory first: part of the cost
      new Uint8Array(ll.memory.buffer, buf, b.length).set(b);
      const rc = ll.llhttp_execute(ptr, buf, b.length);
      if (rc !== 0) throw new Error(`llhttp error ${rc}`);
      sink += nf;
    },
  };
}

// --- Node's own parser --------------------------------------------------------------------
interface NodeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  [k: number]: unknown;
}
function nodeParser(type: 'request' | 'response'): ((b: Buffer) => void) | undefined {
  let HTTPParser: (new () => NodeParser) & Record<string, number>;
  try {
    ({ HTTPParser } = require('_http_common') as {
      HTTPParser: (new () => NodeParser) & Record<string, number>;
    });
  } catch {
    return undefined;
  }
  const p = new HTTPParser();
  const t = type === 'request' ? (HTTPParser.REQUEST as number) : (HTTPParser.RESPONSE as number);
  {
    p.initialize(t, {}, 16 * 1024, 0);
    p[HTTPParser.kOnHeaders as number] = () => 0;
    p[HTTPParser.kOnHeadersComplete as number] = (_ma: number, _mi: number, headers: string[]) => {
      sink += headers.length;
      return 0;
    };
    p[HTTPParser.kOnBody as number] = () => 0;
    p[HTTPParser.kOnMessageComplete as number] = () => 0;
    p[HTTPParser.kOnExecute as number] = () => 0;
  }
  return (b) => {
    const r = p.execute(b);
    if (r instanceof Error) throw r;
  };
}

/** A 64 KiB piece of a Content-Length body, as a socket read hands it over. */
function bodies(): string[] {
  const out: string[] = [];
  const piece = Buffer.alloc(64 * 1024, 0x61);
  const body = 999_999_999_999_999; // never reached: every read is body
  const r = new RequestReader(limits);
  const head = Buffer.from(`POST /up HTTP/1.1\r\nContent-Length: ${body}\r\n\r\n`);
  r.next(head, 0);
  out.push(
    row(
      'ours: a 64 KiB body read (Content-Length)',
      measure(() => {
        if (r.next(piece, 0) !== 2) throw new Error('not data');
        sink += r.dataEnd;
      }, 20_000),
    ),
  );
  const ll = llhttp(true);
  if (ll) {
    ll.parse(head);
    out.push(
      row(
        'llhttp wasm simd: a 64 KiB body read',
        measure(() => ll.parse(piece), 20_000),
      ),
    );
  }
  const node = nodeParser('request');
  if (node) {
    node(head);
    out.push(
      row(
        'node llhttp (native): a 64 KiB body read',
        measure(() => node(piece), 20_000),
      ),
    );
  }
  return out;
}

function row(name: string, m: { ns: number; bytes: number | undefined }): string {
  const bytes = m.bytes === undefined ? '(gc)' : m.bytes < 8 ? '~0' : m.bytes.toFixed(0);
  return `| ${name.padEnd(44)} | ${m.ns.toFixed(0).padStart(7)} | ${bytes.padStart(9)} |`;
}

function main(): void {
  const n = quick ? 20_000 : 200_000;
  const out: string[] = [];
  out.push(`node ${process.version}, ${n} heads per round, best of 5 rounds, CPU time per head`);
  out.push(`| parser, head | ns/head | B/head |`);
  out.push(`|---|---:|---:|`);
  const simd = llhttp(true);
  const plain = llhttp(false);
  const node = nodeParser('request');
  for (const [name, text] of Object.entries(HEADS)) {
    const b = Buffer.from(text, 'latin1');
    out.push(
      row(
        `ours: ${name}`,
        measure(() => oursRequest(b), n),
      ),
    );
    out.push(
      row(
        `ours + encode upstream head: ${name}`,
        measure(() => oursForward(b), n),
      ),
    );
    if (simd)
      out.push(
        row(
          `llhttp wasm simd: ${name}`,
          measure(() => simd.parse(b), n),
        ),
      );
    if (plain)
      out.push(
        row(
          `llhttp wasm: ${name}`,
          measure(() => plain.parse(b), n),
        ),
      );
    if (node)
      out.push(
        row(
          `node llhttp (native): ${name}`,
          measure(() => node(b), n),
        ),
      );
  }
  const views = llhttp(true, true);
  for (const [name, text] of Object.entries(HEADS)) {
    const b = Buffer.from(text, 'latin1');
    if (views)
      out.push(
        row(
          `llhttp wasm simd + undici-style field views: ${name}`,
          measure(() => views.parse(b), n),
        ),
      );
  }
  const rb = Buffer.from(RESPONSE_HEAD, 'latin1');
  out.push(
    row(
      `ours: ${RESPONSE}`,
      measure(() => oursResponse(rb), n),
    ),
  );
  if (simd) {
    simd.type(2);
    out.push(
      row(
        `llhttp wasm simd: ${RESPONSE}`,
        measure(() => simd.parse(rb), n),
      ),
    );
  }
  const nodeRes = nodeParser('response');
  if (nodeRes)
    out.push(
      row(
        `node llhttp (native): ${RESPONSE}`,
        measure(() => nodeRes(rb), n),
      ),
    );
  out.push(...bodies());
  process.stdout.write(`${out.join('\n')}\n`);
  if (sink === -1) process.stdout.write('\n');
}

main();
