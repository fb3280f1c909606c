/**
 * The peer corpus `../shared/corpus/http-desync` (106 request cases with a verdict, from
 * aws/http-desync-guardian; its README says what each tier means for us) sent raw to the inbound
 * and the outbound listener of a real engine on loopback, in front of a raw TCP backend that
 * counts the bytes it receives (a strict HTTP server would refuse what the proxy let through and
 * hide it). Severe: never reaches the backend, 4xx and closed. Compliant: reaches it and is
 * answered. Ambiguous: refused, or what reaches the backend parses one way only (no duplicate or
 * look-alike framing header, no body on GET/HEAD). Acceptable: either; recorded for
 * docs/testing.md (printed when REMORA_CORPUS_REPORT=1; =2 adds what reached the backend for
 * every forwarded case that is not Compliant).
 *
 * Never copied into the project: read at its path beside the project root; fails under CI=true
 * when absent (like the workload corpus in test/injector/cli/inject.test.ts).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { IN_CI } from '../../helpers/env.js';
import { startEngine, upstreamClientEnv } from '../harness.js';
import type { TestEngine } from '../harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CORPUS = resolve(ROOT, '../shared/corpus/http-desync');

interface Case {
  readonly file: string;
  readonly name: string;
  readonly method: string;
  readonly uri: string;
  readonly version: string | undefined;
  readonly headers: readonly { name: string; value: string }[];
  readonly tier: 'Severe' | 'Ambiguous' | 'Acceptable' | 'Compliant';
}

function loadCases(): Case[] {
  if (!existsSync(CORPUS)) return [];
  const out: Case[] = [];
  for (const file of readdirSync(CORPUS)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const docs = parse(readFileSync(join(CORPUS, file), 'utf8')) as Record<string, unknown>[];
    for (const d of docs) {
      out.push({
        file,
        name: String(d.name),
        method: String(d.method ?? ''),
        uri: String(d.uri ?? ''),
        version: d.version === undefined || d.version === null ? undefined : String(d.version),
        headers: ((d.headers ?? []) as { name: unknown; value: unknown }[]).map((h) => ({
          name: String(h.name),
          value: String(h.value),
        })),
        tier: (d.expected as { tier: Case['tier'] }).tier,
      });
    }
  }
  return out;
}

const cases = loadCases();
if (IN_CI && cases.length === 0)
  throw new Error(`CI=true but the http-desync corpus is missing at ${CORPUS}`);

/** The case as bytes: YAML escapes are already decoded; every character is one byte (latin1)
 *  except non-Latin-1 text (UTF-8, as a client would send it). */
function render(c: Case): Buffer {
  const line =
    c.version === undefined || c.version === ''
      ? `${c.method} ${c.uri}`
      : `${c.method} ${c.uri} ${c.version}`;
  let head = `${line}\r\n`;
  for (const h of c.headers) head += `${h.name}:${h.value}\r\n`;
  head += '\r\n';
  const lengths = c.headers.filter((h) => h.name === 'Content-Length');
  const chunked = c.headers.some((h) => /transfer.encoding/i.test(h.name) && /chunked/i.test(h.value));
  let body = chunked ? '0\r\n\r\n' : '';
  const cl = lengths.length === 1 ? (lengths[0] as { value: string }).value.trim() : undefined;
  if (cl !== undefined && /^\d{1,8}$/.test(cl)) body += 'a'.repeat(Math.max(0, Number(cl) - body.length));
  return Buffer.concat([bytes(head), Buffer.from(body, 'latin1')]);
}

function bytes(s: string): Buffer {
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\xff]/.test(s) ? Buffer.from(s, 'utf8') : Buffer.from(s, 'latin1');
}

/** A raw TCP backend: records every connection's bytes, answers once a head (and the body its
 *  framing names) has arrived, then closes. */
interface RawBackend {
  readonly port: number;
  readonly conns: { bytes: Buffer }[];
  /** every chunk received, in order, with the connection it came on */
  readonly chunks: { conn: { bytes: Buffer }; data: Buffer }[];
  close(): Promise<void>;
}

async function rawBackend(): Promise<RawBackend> {
  const conns: { bytes: Buffer }[] = [];
  const chunks: { conn: { bytes: Buffer }; data: Buffer }[] = [];
  const server = net.createServer((s) => {
    const rec = { bytes: Buffer.alloc(0) };
    conns.push(rec);
    let answered = false;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      rec.bytes = Buffer.concat([rec.bytes, d]);
      chunks.push({ conn: rec, data: d });
      if (answered || !complete(rec.bytes)) return;
      answered = true;
      s.end('HTTP/1.1 200 OK\r\nx-raw-backend: yes\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    conns,
    chunks,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Head received, and the body its (first) framing header names. */
function complete(b: Buffer): boolean {
  const end = b.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const head = b.toString('latin1', 0, end).toLowerCase();
  const body = b.length - end - 4;
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) return b.indexOf('0\r\n\r\n', end + 4) !== -1;
  const cl = /\r\ncontent-length: *(\d+)/.exec(head);
  return cl === null || body >= Number(cl[1]);
}

interface Outcome {
  /** bytes that reached the backend for this case (0: nothing) */
  readonly reached: number;
  /** what the backend received */
  readonly forwarded: string;
  /** status line the client got, or `closed` */
  readonly status: string;
  readonly closed: boolean;
}

/** Sends `data`, reads until the connection closes or one full response has arrived. */
function exchange(port: number, data: Buffer): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    const done = (closed: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve({ text: got.toString('latin1'), closed });
    };
    // A bound, not an assertion: a proxy that neither answers nor closes shows as "no answer".
    const t = setTimeout(() => done(false), 3000);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = got.toString('latin1', 0, end).toLowerCase();
      const cl = /\r\ncontent-length: *(\d+)/.exec(head);
      if (cl !== null && got.length - end - 4 >= Number(cl[1]) && !/\r\nconnection: *close/.test(head))
        done(false);
    });
    s.on('close', () => done(true));
    s.on('error', () => undefined);
  });
}

let backend: RawBackend;
let proxy: TestEngine;

beforeAll(async () => {
  backend = await rawBackend();
  proxy = await startEngine({
    [ENV.logLevel]: 'silent',
    [ENV.inboundTarget]: `127.0.0.1:${backend.port}`,
    [ENV.outboundTarget]: `127.0.0.1:${backend.port}`,
  });
});

afterAll(async () => {
  await proxy?.engine.close();
  await backend?.close();
});

async function run(listener: 'inbound' | 'outbound', c: Case): Promise<Outcome> {
  const before = backend.chunks.length;
  const r = await exchange(proxy.port(listener), render(c));
  // A control request through the same listener: once it has reached the backend, anything the
  // case made the proxy send has too (no timing involved).
  const control = await exchange(
    proxy.port(listener),
    Buffer.from('GET /control HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n', 'latin1'),
  );
  expect(control.text).toMatch(/^HTTP\/1\.1 200/);
  const mine = backend.chunks
    .slice(before)
    .filter((x) => !x.conn.bytes.toString('latin1').startsWith('GET /control '));
  const forwarded = Buffer.concat(mine.map((x) => x.data));
  return {
    reached: forwarded.length,
    forwarded: forwarded.toString('latin1'),
    status: /^(HTTP\/1\.[01] \d{3})/.exec(r.text)?.[1] ?? (r.closed ? 'closed' : 'no answer'),
    closed: r.closed,
  };
}

/**
 * Compliant cases that Node's strict HTTP parser (llhttp) refuses with 400 before the proxy sees
 * them: refused is safe (nothing reaches the app), but not what the tier asks. The project's
 * codec stage (REMORA_HTTP_SERVER=codec, the default) forwards the first three, normalized (the
 * target percent-encoded, the transfer-coding re-framed as plain `chunked`); an empty
 * request-target stays refused on both stages (RFC 9112 §3.2 requires one).
 */
const NODE_REFUSES: Readonly<Record<string, string>> = {
  'International in URI': 'raw UTF-8 in the request-target (HPE_INVALID_URL)',
  'TE with custom parameters OK': 'parameters on chunked (HPE_INVALID_TRANSFER_ENCODING)',
  'Transfer-Encoding with a param: chunked;custom_param':
    'parameters on chunked (HPE_INVALID_TRANSFER_ENCODING)',
  'Empty URI': 'no request-target (HPE_INVALID_URL)',
};
const CODEC_REFUSES: Readonly<Record<string, string>> = { 'Empty URI': 'no request-target' };
const REFUSED_BY_PARSER =
  parseConfig(upstreamClientEnv()).httpServer === 'codec' ? CODEC_REFUSES : NODE_REFUSES;

const report: string[] = [];

/** Framing a second parser could read differently: what an Ambiguous case must never carry. */
function ambiguousFraming(forwarded: string): string | undefined {
  const end = forwarded.indexOf('\r\n\r\n');
  const head = forwarded.slice(0, end === -1 ? undefined : end);
  const lines = head.split('\r\n').slice(1);
  const names = lines.map((l) => l.slice(0, l.indexOf(':')));
  const framing = names.filter((n) => /^(content-length|transfer-encoding)$/i.test(n));
  if (framing.length > 1) return `several framing headers: ${framing.join(', ')}`;
  const lookalike = names.find(
    (n) =>
      !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n) ||
      (/^(content|transfer)[-_ ]/i.test(n) &&
        !/^(content-length|transfer-encoding)$/i.test(n) &&
        /length|encoding/i.test(n)),
  );
  if (lookalike !== undefined) return `look-alike header ${JSON.stringify(lookalike)}`;
  if (/^(GET|HEAD) /.test(head) && framing.length > 0) return `${head.slice(0, 4).trim()} with a body`;
  return undefined;
}

describe.skipIf(cases.length === 0)('the http-desync corpus (../shared/corpus/http-desync)', () => {
  it.each(cases.map((c) => [`${c.tier}: ${c.name} (${c.file})`, c] as const))('%s', async (_title, c) => {
    const results = { inbound: await run('inbound', c), outbound: await run('outbound', c) };
    for (const [listener, o] of Object.entries(results)) {
      const where = `${listener}: ${o.status}, ${o.reached} bytes reached the backend ${JSON.stringify(o.forwarded.slice(0, 300))}`;
      switch (c.tier) {
        case 'Severe':
          expect(o.reached, where).toBe(0);
          expect(o.status, where).toMatch(/^HTTP\/1\.1 4\d\d$/);
          expect(o.closed, where).toBe(true);
          break;
        case 'Compliant':
          if (REFUSED_BY_PARSER[c.name] !== undefined) {
            expect(o.reached, where).toBe(0);
            expect(o.status, where).toBe('HTTP/1.1 400');
            break;
          }
          expect(o.reached, where).toBeGreaterThan(0);
          expect(o.status, where).toBe('HTTP/1.1 200');
          break;
        case 'Ambiguous':
          if (o.reached > 0) expect(ambiguousFraming(o.forwarded), where).toBeUndefined();
          else expect(o.status, where).toMatch(/^HTTP\/1\.1 4\d\d$/);
          break;
        default:
          break;
      }
    }
    const show = (o: Outcome) =>
      o.reached > 0 ? `forwarded (${o.status.slice(9)})` : `refused (${o.status.slice(9) || o.status})`;
    if (process.env.REMORA_CORPUS_REPORT === '2' && results.inbound.reached > 0 && c.tier !== 'Compliant')
      report.push(`${c.name}: ${JSON.stringify(results.inbound.forwarded.slice(0, 200))}`);
    report.push(`| ${c.tier} | ${c.name} | ${show(results.inbound)} | ${show(results.outbound)} |`);
  });

  afterAll(() => {
    if (process.env.REMORA_CORPUS_REPORT !== undefined) console.log(report.join('\n'));
  });
});
