// The discovery file's map, IPv6 included: services and endpoints with IPv6 addresses parse, and
// keys come out in the form the outbound side looks them up with (`[ip]:port`, canonical text).
import { describe, expect, it } from 'vitest';
import { PORTS } from '../../../proxy/src/contract.js';
import { parseDiscovery } from '../../../proxy/src/discovery/static.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/web';
const doc = (services: unknown): string => JSON.stringify({ services });

describe('parseDiscovery', () => {
  it('parses IPv6 services and endpoints (dual stack beside IPv4), keyed [ip]:port', () => {
    const map = parseDiscovery(
      doc({
        '[fd00:10:96::a]:80': {
          endpoints: [
            { ip: 'fd00:10:1::3', port: 8080, meshed: true, identity: ID },
            { ip: 'fd00:10:1::4', port: 8080, meshed: false },
          ],
        },
        '10.96.0.10:80': { endpoints: [{ ip: '10.1.0.3', port: 8080, meshed: true, identity: ID }] },
      }),
    );
    expect([...map.keys()]).toEqual(['[fd00:10:96::a]:80', '10.96.0.10:80']);
    expect(map.get('[fd00:10:96::a]:80')).toEqual([
      {
        ip: 'fd00:10:1::3',
        port: 8080,
        meshed: true,
        identity: ID,
        tunnelPort: PORTS.tunnel,
        key: '[fd00:10:1::3]:8080',
      },
      {
        ip: 'fd00:10:1::4',
        port: 8080,
        meshed: false,
        identity: undefined,
        tunnelPort: PORTS.tunnel,
        key: '[fd00:10:1::4]:8080',
      },
    ]);
  });

  it('writes IPv6 addresses in their canonical form, so a file in capitals still matches the kernel’s', () => {
    const map = parseDiscovery(
      doc({
        '[FD00:0:0::A]:80': { endpoints: [{ ip: 'FD00:0010:0001:0:0:0:0:3', port: 8080, meshed: false }] },
      }),
    );
    expect([...map.keys()]).toEqual(['[fd00::a]:80']);
    expect(map.get('[fd00::a]:80')?.[0]).toMatchObject({ ip: 'fd00:10:1::3', key: '[fd00:10:1::3]:8080' });
  });

  it('refuses IPv6 written without brackets as a service, or with brackets as an endpoint ip, naming each', () => {
    expect(() =>
      parseDiscovery(
        doc({
          'fd00::a:80': { endpoints: [] },
          '[fd00::b]:80': { endpoints: [{ ip: '[fd00::3]', port: 8080 }] },
          '[fd00::zz]:80': { endpoints: [] },
        }),
      ),
    ).toThrow(
      'service "fd00::a:80": not ip:port; service [fd00::b]:80 endpoint 0: "ip" "[fd00::3]" is not an IP address; service "[fd00::zz]:80": not ip:port',
    );
  });
});
