import { describe, expect, it } from 'vitest';
import { peerFromIdentity } from '../../../proxy/src/telemetry/layer.js';

describe('peerFromIdentity', () => {
  it('takes the namespace from a SPIFFE workload identity and keeps the identity', () => {
    expect(peerFromIdentity('spiffe://cluster.local/ns/shop/sa/cart')).toEqual({
      identity: 'spiffe://cluster.local/ns/shop/sa/cart',
      namespace: 'shop',
    });
  });

  it('an identity of another shape keeps the identity and names no namespace', () => {
    expect(peerFromIdentity('spiffe://cluster.local/custom/path')).toEqual({
      identity: 'spiffe://cluster.local/custom/path',
      namespace: undefined,
    });
    expect(peerFromIdentity('spiffe://td/ns/a/sa/b/extra').namespace).toBeUndefined();
  });
});
