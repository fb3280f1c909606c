import { describe, expect, it } from 'vitest';
import { parsePolicyDocument } from '../../../proxy/src/policy/document.js';
import { NO_AUTHZ_PORTS, authzPorts, governsPort, isAuthzPorts } from '../../../proxy/src/policy/governed.js';

const self = { namespace: 'shop', workload: 'orders' };

function doc(policies: string): ReturnType<typeof parsePolicyDocument> {
  return parsePolicyDocument(`apiVersion: remora.dev/v1\nkind: PolicySet\npolicies:\n${policies}`);
}

describe('authzPorts: the inbound ports an authorization policy governs (the degraded relay resets them)', () => {
  it('collects the ports of sections with authorization, for policies that select this workload', () => {
    const d = doc(`
  - name: a
    selector: { namespace: shop }
    inbound:
      - ports: [8080, 9090]
        authorization: { default: deny }
      - ports: [7000]
        rateLimit: { requestsPerSecond: 5 }
  - name: b
    selector: { workload: other }
    inbound:
      - ports: [6000]
        authorization: { default: deny }
  - name: c
    inbound:
      - ports: [8080, 5000]
        authorization:
          rules: [{ name: no-admin, action: deny, request: { paths: [{ prefix: /admin/ }] } }]
`);
    const g = authzPorts(d, self);
    expect(g).toEqual({ all: false, ports: [5000, 8080, 9090] });
    expect(governsPort(g, 8080)).toBe(true);
    expect(governsPort(g, 7000)).toBe(false); // a rate limit alone is no authorization
    expect(governsPort(g, 6000)).toBe(false); // another workload's policy
  });

  it('a section without ports governs every port; `default: allow` without rules governs none', () => {
    expect(
      authzPorts(doc(`  - name: a\n    inbound:\n      - authorization: { default: audit }\n`), self),
    ).toEqual({
      all: true,
      ports: [],
    });
    expect(
      authzPorts(doc(`  - name: a\n    inbound:\n      - authorization: { default: allow }\n`), self),
    ).toBe(NO_AUTHZ_PORTS);
    expect(authzPorts(doc('  - name: empty\n'), self)).toBe(NO_AUTHZ_PORTS);
  });

  it('isAuthzPorts validates what crosses the IPC channel', () => {
    expect(isAuthzPorts({ all: false, ports: [1, 65535] })).toBe(true);
    for (const bad of [
      null,
      {},
      { all: 'yes', ports: [] },
      { all: false, ports: [0] },
      { all: false, ports: ['80'] },
    ])
      expect(isAuthzPorts(bad), JSON.stringify(bad)).toBe(false);
  });
});
