/**
 * The HTTP/1.1 desync corpus (../shared/corpus/http-desync, read in place, never copied; its
 * README gives the tiers) through the codec's request side: every Severe case refused with a
 * specific RMR_HTTP1_* error, every Compliant case accepted with its body, every Ambiguous case
 * refused or re-encoded with one canonical framing that Node's strict parser reads the same
 * way. Under CI=true a missing corpus fails the file.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { encodeRequestHead } from '../../../proxy/src/http1/encode.js';
import { BODY_CHUNKED, BODY_LENGTH, requestBody } from '../../../proxy/src/http1/framing.js';
import { R_HEAD, RequestReader } from '../../../proxy/src/http1/reader.js';
import { IN_CI } from '../../helpers/env.js';
import { LIMITS, readRequests } from './drive.js';
import { nodeRefuses } from './node-parser.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CORPUS = resolve(ROOT, '../shared/corpus/http-desync');

interface Case {
  file: string;
  name: string;
  method: string;
  uri: string;
  version: string;
  headers: { name: string; value: string }[];
  tier: 'Severe' | 'Ambiguous' | 'Acceptable' | 'Compliant';
}

function load(): Case[] {
  if (!existsSync(CORPUS)) return [];
  const out: Case[] = [];
  for (const file of readdirSync(CORPUS)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const list = (parse(readFileSync(join(CORPUS, file), 'utf8')) ?? []) as {
      name: string;
      method: string;
      uri: unknown;
      version: unknown;
      headers: { name: unknown; value: unknown }[] | null;
      expected: { tier: Case['tier'] };
    }[];
    for (const c of list) {
      out.push({
        file,
        name: c.name,
        method: String(c.method),
        uri: c.uri == null ? '' : String(c.uri),
        version: c.version == null ? '' : String(c.version),
        headers: (c.headers ?? []).map((h) => ({ name: String(h.name ?? ''), value: String(h.value ?? '') })),
        tier: c.expected.tier,
      });
    }
  }
  return out;
}

/** The case as raw bytes (strings are UTF-8 on the wire), with the body its framing names. */
function render(c: Case): Buffer {
  const line = c.version === '' ? `${c.method} ${c.uri}` : `${c.method} ${c.uri} ${c.version}`;
  const head = `${line}\r\n${c.headers.map((h) => `${h.name}:${h.value}\r\n`).join('')}\r\n`;
  const cls = c.headers.filter((h) => h.name === 'Content-Length');
  const te = c.headers.some((h) => /^transfer-encoding$/i.test(h.name) && /chunked/i.test(h.value));
  let body = Buffer.alloc(0);
  if (te) body = Buffer.from('0\r\n\r\n');
  else if (cls.length === 1 && /^\s*\d+\s*$/.test(cls[0]?.value ?? '') && Number(cls[0]?.value) <= 2 ** 24)
    body = Buffer.alloc(Number(cls[0]?.value), 0x61);
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}

const cases = load();
if (IN_CI && cases.length === 0) throw new Error(`CI=true but the desync corpus is missing at ${CORPUS}`);
const byTier = (t: Case['tier']) =>
  cases.filter((c) => c.tier === t).map((c) => [`${c.file}: ${c.name}`, c] as const);

describe.skipIf(cases.length === 0)('the desync corpus (../shared/corpus/http-desync)', () => {
  it('has every tier', () => {
    for (const t of ['Severe', 'Ambiguous', 'Acceptable', 'Compliant'] as const)
      expect(byTier(t).length, t).toBeGreaterThan(0);
  });

  it.each(byTier('Severe'))('Severe, refused with a specific error: %s', (_n, c) => {
    const t = readRequests([render(c)], { maxHeadBytes: LIMITS.maxHeadBytes, maxFields: LIMITS.maxFields });
    expect(t.error?.code).toMatch(/^RMR_HTTP1_(SYNTAX|FRAMING|CHUNK)$/);
    expect(t.error?.reason).toMatch(/^[a-z0-9_]+$/);
    expect(t.messages).toHaveLength(0);
  });

  it.each(byTier('Compliant'))('Compliant, accepted with its body: %s', (_n, c) => {
    const t = readRequests([render(c)]);
    expect(t.error).toBeUndefined();
    expect(t.messages).toHaveLength(1);
    expect(t.messages[0]?.complete).toBe(true);
  });

  it.each(byTier('Ambiguous'))('Ambiguous, refused or forwarded in one reading only: %s', (_n, c) => {
    const bytes = render(c);
    const t = readRequests([bytes]);
    if (t.error !== undefined) {
      expect(t.error.code).toMatch(/^RMR_HTTP1_/);
      return;
    }
    // Accepted: what goes upstream frames the body one way, and Node's strict parser agrees.
    const r = new RequestReader(LIMITS);
    expect(r.next(bytes, 0)).toBe(R_HEAD);
    const framing = requestBody(r.head);
    const out = encodeRequestHead(r.head, { framing, length: r.head.contentLength, extra: [] }).toString(
      'latin1',
    );
    // a framing field, however spelled (`_` for `-`, repeated delimiters), appears once or not at all
    const framingFields = out
      .split('\r\n')
      .filter((l) =>
        /^(contentlength|transferencoding)$/.test(l.split(':')[0]?.toLowerCase().replace(/[-_]/g, '') ?? ''),
      );
    expect(framingFields.length).toBe(framing === BODY_LENGTH || framing === BODY_CHUNKED ? 1 : 0);
    expect(
      nodeRefuses(Buffer.concat([Buffer.from(out, 'latin1'), bytes.subarray(r.pos)]), 'request', 16384),
    ).toBe(false);
  });

  it.each(byTier('Acceptable'))('Acceptable, refused or accepted, never a crash: %s', (_n, c) => {
    const t = readRequests([render(c)]);
    if (t.error !== undefined) expect(t.error.code).toMatch(/^RMR_HTTP1_/);
    else expect(t.messages[0]?.complete).toBe(true);
  });
});
