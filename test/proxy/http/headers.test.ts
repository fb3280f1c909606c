import { describe, expect, it } from 'vitest';
import {
  filterRequestHeaders,
  filterResponseHeaders,
  isOrigProtoHeader,
  isPeerIdentityHeader,
} from '../../../proxy/src/http/headers.js';
import type { RequestHeadInfo } from '../../../proxy/src/http/headers.js';
import { PEER_IDENTITY_SPELLINGS } from '../harness.js';

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
