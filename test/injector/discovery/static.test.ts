// The injector's discovery file: IPv6 services and endpoints parse, keyed in the canonical form
// the proxy subscribes with (it keys a destination by the kernel's original destination).
import { describe, expect, it } from 'vitest';
import { parseServices } from '../../../injector/src/discovery/static.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/web';

describe('parseServices', () => {
  it('parses IPv6 services and endpoints beside IPv4, in canonical form', () => {
    const map = parseServices(
      JSON.stringify({
        services: {
          '[FD00:10:96:0::A]:80': {
            endpoints: [
              { ip: 'FD00:10:1:0:0:0:0:3', port: 8080, meshed: true, identity: ID },
              { ip: '::ffff:10.1.0.4', port: 8080 },
            ],
          },
          '10.96.0.10:80': { endpoints: [{ ip: '10.1.0.3', port: 8080, meshed: false }] },
        },
      }),
    );
    expect([...map.keys()]).toEqual(['[fd00:10:96::a]:80', '10.96.0.10:80']);
    expect(map.get('[fd00:10:96::a]:80')).toEqual([
      { ip: 'fd00:10:1::3', port: 8080, meshed: true, identity: ID },
      { ip: '::ffff:10.1.0.4', port: 8080, meshed: false },
    ]);
  });

  it('refuses a service that is not ip:port (unbracketed IPv6, no address at all), naming it', () => {
    expect(() =>
      parseServices(
        JSON.stringify({ services: { 'fd00::a:80': { endpoints: [] }, '999.1.1.1:80': { endpoints: [] } } }),
      ),
    ).toThrow(
      'service "fd00::a:80": needs "ip:port" and an "endpoints" array; service "999.1.1.1:80": needs "ip:port" and an "endpoints" array',
    );
  });
});
