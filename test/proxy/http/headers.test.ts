import { describe, expect, it } from 'vitest';
import { filterRequestHeaders, isPeerIdentityHeader } from '../../../proxy/src/http/headers.js';
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
});
