import { afterEach, describe, expect, it } from 'vitest';
import { ENV, INBOUND_PASSTHROUGH_SOURCE } from '../../../proxy/src/contract.js';
import { appTarget, inboundDelivery } from '../../../proxy/src/inbound/target.js';
import { startEngine } from '../harness.js';
import type { TestEngine } from '../harness.js';

describe('appTarget: where an inbound connection is delivered (DESIGN §3)', () => {
  it('to the pod IP from the passthrough source of its family', () => {
    expect(appTarget(inboundDelivery('10.1.2.3', []), 8080)).toEqual({
      host: '10.1.2.3',
      port: 8080,
      localAddress: INBOUND_PASSTHROUGH_SOURCE.ipv4,
    });
    // Whatever loopback the peer named: the pod IP.
    expect(appTarget(inboundDelivery('10.1.2.3', []), 8080, true).host).toBe('10.1.2.3');
    expect(appTarget(inboundDelivery('fd00::12', []), 8080)).toEqual({
      host: 'fd00::12',
      port: 8080,
      localAddress: INBOUND_PASSTHROUGH_SOURCE.ipv6,
    });
  });

  it('to loopback for the ports the pod names, and without a pod IP', () => {
    const d = inboundDelivery('10.1.2.3', [6379]);
    expect(appTarget(d, 6379)).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(appTarget(d, 6379, true)).toEqual({ host: '::1', port: 6379 });
    expect(appTarget(inboundDelivery(undefined, []), 8080)).toEqual({ host: '127.0.0.1', port: 8080 });
  });
});

describe('the engine says where inbound goes', () => {
  let px: TestEngine | undefined;
  afterEach(async () => {
    await px?.engine.close();
    px = undefined;
  });

  it('a pod without REMORA_POD_IP is warned that loopback-only listeners are reachable', async () => {
    px = await startEngine({ [ENV.podName]: 'web-0' });
    expect(px.logs.find((l) => l.event === 'inbound_delivery')).toMatchObject({ level: 'warn', podIp: null });
  });

  it('an IPv6 pod IP whose passthrough source ::6 is not on lo is refused loudly, delivery stays on loopback', async () => {
    px = await startEngine({ [ENV.podIp]: 'fd00::12' });
    expect(px.logs.find((l) => l.event === 'inbound_passthrough_unavailable')).toMatchObject({
      level: 'error',
      localAddress: '::6',
      podIp: 'fd00::12',
    });
    expect(px.logs.find((l) => l.event === 'inbound_delivery')).toMatchObject({ podIp: null });
  });

  it('an IPv4 pod IP is used as is', async () => {
    px = await startEngine({ [ENV.podIp]: '10.1.2.3' });
    expect(px.logs.find((l) => l.event === 'inbound_delivery')).toMatchObject({
      level: 'info',
      podIp: '10.1.2.3',
      localAddress: INBOUND_PASSTHROUGH_SOURCE.ipv4,
    });
    expect(px.logs.some((l) => l.event === 'inbound_passthrough_unavailable')).toBe(false);
  });
});
