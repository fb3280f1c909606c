import { describe, expect, it } from 'vitest';
import {
  filterRequestHeaders,
  filterResponseFields,
  filterResponseHeaders,
  isOrigProtoHeader,
  isPeerIdentityHeader,
  keptResponseLines,
} from '../../../proxy/src/http/headers.js';
import type { KeptFacts, RequestHeadInfo } from '../../../proxy/src/http/headers.js';
import { ResponseHead, parseResponseHead, sameName } from '../../../proxy/src/http1/head.js';
import { PEER_IDENTITY_SPELLINGS } from '../harness.js';
import { seededPick } from '../../helpers/random.js';

describe('isPeerIdentityHeader', () => {
  it.each(PEER_IDENTITY_SPELLINGS)('%s is the peer identity header', (name) => {
    expect(isPeerIdentityHeader(name)).toBe(true);
  });

  it.each([
    'x-remora-peer-identityx',
    'x-remora-peer-identit',
    'x.remora.peer.identity',
    'x remora peer identity',
    'y-remora-peer-identity',
    'x-remora-peer-identitz',
    'x-remora-peer=identity',
    'xaremoraapeeraidentity',
  ])('%s is not', (name) => {
    expect(isPeerIdentityHeader(name)).toBe(false);
  });
});

describe('filterRequestHeaders', () => {
  it('drops every spelling of the peer identity header, keeps the other fields, joins Upgrade lists', () => {
    const raw: string[] = ['Host', 'app'];
    for (const s of PEER_IDENTITY_SPELLINGS) raw.push(s, 'spiffe://forged');
    raw.push('Upgrade', 'websocket', 'upgrade', 'h2c', 'x-remora-peer-identity-extra', 'kept');
    const out: string[] = [];
    const info: RequestHeadInfo = { hasBody: false, upgrade: undefined };
    filterRequestHeaders(raw, out, info);
    expect(out).toEqual(['Host', 'app', 'x-remora-peer-identity-extra', 'kept']);
    expect(info.upgrade).toBe('websocket, h2c');
  });

  it('drops every spelling of x-remora-orig-proto and reports its value (tunnel/origproto.ts)', () => {
    const raw = [
      'Host',
      'app',
      'X-Remora-Orig-Proto',
      'HTTP/1.0',
      'x_remora_orig_proto',
      'HTTP/1.1',
      'x-remora-orig-protocol',
      'kept',
    ];
    const out: string[] = [];
    const info: RequestHeadInfo = { hasBody: false, upgrade: undefined };
    filterRequestHeaders(raw, out, info);
    expect(out).toEqual(['Host', 'app', 'x-remora-orig-protocol', 'kept']);
    expect(info.origProto).toBe('HTTP/1.1');
  });
});

describe('isOrigProtoHeader / filterResponseHeaders', () => {
  it.each(['x-remora-orig-proto', 'X-REMORA-ORIG-PROTO', 'x_remora_orig_proto', 'X-Remora_Orig-Proto'])(
    '%s is the orig-proto header',
    (name) => expect(isOrigProtoHeader(name)).toBe(true),
  );
  it.each(['x-remora-orig-prot', 'x-remora-orig.proto', 'l5d-orig-proto', 'x-remora-peer-identity'])(
    '%s is not',
    (name) => expect(isOrigProtoHeader(name)).toBe(false),
  );
  it('an app’s answer never carries it either', () => {
    const out: string[] = [];
    filterResponseHeaders(['x-remora-orig-proto', 'HTTP/1.1', 'content-type', 'text/plain'], out);
    expect(out).toEqual(['content-type', 'text/plain']);
  });
});

/**
 * The filters compare names in place (`sameName`, by length first); checked here against a
 * plain reading of RFC 9110 §7.6.1 that lower-cases every name, over random heads of the names
 * that matter in random case, Connection lists included.
 */
describe('the filters against a lower-casing reference', () => {
  const HOP_NAMES = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect'];
  const HOP = new Set(HOP_NAMES);
  const isHop = (l: string): boolean => HOP.has(l) || l.startsWith('proxy-');
  function tokens(raw: readonly string[], withClose: boolean): Set<string> {
    const named = new Set<string>();
    for (let i = 0; i < raw.length; i += 2) {
      if ((raw[i] as string).toLowerCase() !== 'connection') continue;
      for (const t of (raw[i + 1] as string).split(',')) {
        const tok = t.trim().toLowerCase();
        if (tok !== '' && (withClose || tok !== 'close') && tok !== 'keep-alive' && tok !== 'upgrade')
          named.add(tok);
      }
    }
    return named;
  }
  function refRequest(raw: readonly string[]): { out: string[]; info: RequestHeadInfo } {
    const named = tokens(raw, false);
    const out: string[] = [];
    const info: RequestHeadInfo = { hasBody: false, upgrade: undefined };
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      const value = raw[i + 1] as string;
      const l = name.toLowerCase();
      if (l === 'content-length') {
        if (value !== '0') info.hasBody = true;
      } else if (isPeerIdentityHeader(name)) {
        continue;
      } else if (isOrigProtoHeader(name)) {
        info.origProto = value;
        continue;
      } else if (isHop(l)) {
        if (l === 'transfer-encoding') info.hasBody = true;
        if (l === 'upgrade') info.upgrade = info.upgrade === undefined ? value : `${info.upgrade}, ${value}`;
        continue;
      }
      if (named.has(l)) continue;
      out.push(name, value);
    }
    return { out, info };
  }
  function refResponse(raw: readonly string[]): string[] {
    const named = tokens(raw, true);
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      const l = name.toLowerCase();
      if (isHop(l) || isOrigProtoHeader(name) || named.has(l)) continue;
      out.push(name, raw[i + 1] as string);
    }
    return out;
  }

  const NAMES = [
    ...HOP_NAMES,
    'content-length',
    'host',
    'date',
    'content-type',
    'x-custom',
    'foo',
    'tf',
    'expecu',
    'proxy-',
    'proxy-a',
    'proxy-auth',
    'proxy-authorization',
    'proxy-connection',
    'proxy-xxxxxxxxxxx',
    'proxyx',
    'prox',
    'x-remora-peer-identity',
    'x_remora_peer_identity',
    'x-remora-orig-proto',
    'x-remora-orig-protx',
    'connectiom',
    'keep_alive',
    'upgrade0',
    'content-lengtH',
    'transfer-encodinh',
    'close',
  ];
  const TOKENS = [
    'close',
    'keep-alive',
    'upgrade',
    'x-custom',
    'foo',
    'content-length',
    'te',
    'date',
    'proxy-a',
    '',
  ];
  const rnd = seededPick(0x2545f491);
  const anyCase = (s: string): string => [...s].map((ch) => (rnd(2) === 0 ? ch.toUpperCase() : ch)).join('');
  function head(): string[] {
    const raw: string[] = [];
    const n = 1 + rnd(9);
    for (let i = 0; i < n; i++) {
      const name = anyCase(NAMES[rnd(NAMES.length)] as string);
      let value: string;
      if (name.toLowerCase() === 'connection') {
        const k = 1 + rnd(3);
        value = Array.from({ length: k }, () => anyCase(TOKENS[rnd(TOKENS.length)] as string)).join(
          rnd(2) ? ', ' : ',',
        );
      } else value = ['0', '5', 'h2c', 'websocket', 'v'][rnd(5)] as string;
      raw.push(name, value);
    }
    return raw;
  }

  it('the same fields out and the same facts on 20,000 random heads', () => {
    for (let k = 0; k < 20_000; k++) {
      const raw = head();
      const out: string[] = [];
      const info: RequestHeadInfo = { hasBody: false, upgrade: undefined };
      filterRequestHeaders(raw, out, info);
      const ref = refRequest(raw);
      expect({ raw, out, info }).toEqual({ raw, out: ref.out, info: ref.info });
      const res: string[] = [];
      filterResponseHeaders(raw, res);
      expect({ raw, res }).toEqual({ raw, res: refResponse(raw) });
    }
  });

  it('the codec-told response filter: the same fields out as the reference on 20,000 random heads the codec parsed', () => {
    const h = new ResponseHead(64);
    const limits = { maxHeadBytes: 16 * 1024, maxFields: 64 };
    let parsed = 0;
    for (let k = 0; k < 20_000; k++) {
      const fields = head();
      let text = 'HTTP/1.1 200 OK\r\n';
      for (let i = 0; i < fields.length; i += 2) text += `${fields[i]}: ${fields[i + 1]}\r\n`;
      const buf = Buffer.from(`${text}\r\n`, 'latin1');
      try {
        parseResponseHead(buf, 0, buf.length, h, limits);
      } catch {
        continue; // framing the codec refuses (two lengths, a bad coding, ...): never forwarded
      }
      parsed++;
      const raw = h.toArray();
      const res: string[] = [];
      filterResponseFields(raw, h.kinds, res);
      expect({ raw, res }).toEqual({ raw, res: refResponse(raw) });
    }
    expect(parsed).toBeGreaterThan(5_000);
  });

  it('the kept lines as they came: the same fields as the reference on 20,000 random heads, spacing kept, facts right', () => {
    const h = new ResponseHead(64);
    const again = new ResponseHead(64);
    const limits = { maxHeadBytes: 16 * 1024, maxFields: 64 };
    const facts: KeptFacts = { contentLength: false, date: false };
    const OWS = ['', ' ', '\t', '  '];
    let parsed = 0;
    let named = 0;
    for (let k = 0; k < 20_000; k++) {
      const fields = head();
      const status = rnd(2) === 0 ? 'HTTP/1.1 200 OK\r\n' : 'HTTP/1.1 404 Not Here\r\n';
      let lines = '';
      for (let i = 0; i < fields.length; i += 2)
        lines += `${fields[i]}:${OWS[rnd(4)]}${fields[i + 1]}${OWS[rnd(4)]}\r\n`;
      const buf = Buffer.from(`${status}${lines}\r\n`, 'latin1');
      try {
        parseResponseHead(buf, 0, buf.length, h, limits);
      } catch {
        continue;
      }
      parsed++;
      if (h.named.length > 0) named++;
      const raw = h.toArray();
      const ref = refResponse(raw);
      const withStatus = rnd(2) === 0;
      const out = keptResponseLines(h, withStatus, facts);
      // What went out parses back to the reference's fields, and each kept line is a line of
      // the original, byte for byte (its spacing too).
      const text = withStatus ? out : status + out;
      expect(text.startsWith(status)).toBe(true);
      const back = Buffer.from(`${text}\r\n`, 'latin1');
      parseResponseHead(back, 0, back.length, again, limits);
      expect({ raw, out: again.toArray() }).toEqual({ raw, out: ref });
      for (const line of text.slice(status.length).split('\r\n').slice(0, -1))
        expect(lines.split('\r\n')).toContain(line);
      const names = ref.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      expect({ raw, facts: { ...facts } }).toEqual({
        raw,
        facts: { contentLength: names.includes('content-length'), date: names.includes('date') },
      });
    }
    expect(parsed).toBeGreaterThan(5_000);
    expect(named).toBeGreaterThan(500);
  });

  it('Proxy-* of every length is hop-by-hop (7- and 10-char ones once passed), and no Unicode case folding', () => {
    const raw = ['Proxy-', '1', 'proxy-A', '2', 'Proxy-Auth', '3', 'Proxy-Authorization', '4', 'x', '5'];
    const out: string[] = [];
    filterRequestHeaders(raw, out, { hasBody: false, upgrade: undefined });
    expect(out).toEqual(['x', '5']);
    const res: string[] = [];
    filterResponseHeaders(raw, res);
    expect(res).toEqual(['x', '5']);
    const h = new ResponseHead(8);
    const buf = Buffer.from(
      `HTTP/1.1 200 OK\r\n${Array.from({ length: raw.length / 2 }, (_, i) => `${raw[i * 2]}: ${raw[i * 2 + 1]}\r\n`).join('')}\r\n`,
      'latin1',
    );
    parseResponseHead(buf, 0, buf.length, h, { maxHeadBytes: 1024, maxFields: 8 });
    const told: string[] = [];
    filterResponseFields(h.toArray(), h.kinds, told);
    expect(told).toEqual(['x', '5']);
    // U+212A KELVIN SIGN lower-cases to `k`: a name spelt with it is not Keep-Alive
    expect(sameName('\u212Aeep-alive', 'keep-alive')).toBe(false);
    expect(sameName('KEEP-ALIVE', 'keep-alive')).toBe(true);
    expect(sameName('keep-alivf', 'keep-alive')).toBe(false);
    expect(sameName('keep-aliv', 'keep-alive')).toBe(false);
    // `|0x20` would map these onto the literal's characters; they are not the same name
    expect(sameName('\rontent-length', '-ontent-length')).toBe(false);
    expect(sameName('@', '`')).toBe(false);
  });
});
