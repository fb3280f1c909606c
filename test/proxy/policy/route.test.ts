import { describe, expect, it } from 'vitest';
import type { DownstreamResponse } from '../../../proxy/src/http/exchange.js';
import { RequestContext } from '../../../proxy/src/http/layer.js';
import { createLogger } from '../../../proxy/src/log.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import type { RouteRetry } from '../../../proxy/src/policy/retry.js';
import { routeLayer } from '../../../proxy/src/policy/route.js';
import { compilePolicy } from '../../../proxy/src/policy/compile.js';
import { parsePolicyDocument } from '../../../proxy/src/policy/document.js';
import type { CompiledPolicy, Route } from '../../../proxy/src/policy/types.js';
import { inboundPolicy } from './traffic-helpers.js';

/** A context as the HTTP stage builds it; the layer reads only the request's facts. */
function ctxFor(path: string, direction: 'inbound' | 'outbound' = 'inbound'): RequestContext {
  return new RequestContext(
    direction,
    {} as DownstreamResponse,
    null,
    'GET',
    path,
    ['host', 'x'],
    '1.1',
    0,
    {
      peerAddress: '127.0.0.1',
      peerPort: 1,
      peerIdentity: undefined,
      destination: { host: '127.0.0.1', port: 8080 },
      destinationKey: '127.0.0.1:8080',
    },
    [],
    false,
  );
}

describe('route layer', () => {
  const metrics = PolicyMetrics.of(new Registry());
  const log = createLogger('silent');
  const section = {
    routes: [
      { match: { paths: [{ prefix: '/slow' }] }, timeoutMs: 2000 },
      { retries: { attempts: 1 } },
    ] satisfies Route[],
  };

  it('no policy: the request passes untouched', () => {
    const seen: RequestContext[] = [];
    const h = routeLayer({ policy: { current: undefined }, direction: 'inbound', metrics, log })((c) =>
      seen.push(c),
    );
    const ctx = ctxFor('/slow/a');
    h(ctx);
    expect(seen).toEqual([ctx]);
    expect(ctx.route).toBeUndefined();
    expect(ctx.retry).toBeUndefined();
  });

  it('picks the first matching route once and the retry state of routes with `retries`', () => {
    const policy = inboundPolicy(section);
    const h = routeLayer({ policy, direction: 'inbound', metrics, log })(() => undefined);
    const slow = ctxFor('/slow/a?x=1');
    h(slow);
    expect(slow.route?.timeoutMs).toBe(2000);
    expect(slow.retry).toBeUndefined();
    const other = ctxFor('/other');
    h(other);
    expect((other.route as Route | undefined)?.retries?.attempts).toBe(1);
    expect((other.retry as RouteRetry | undefined)?.attempts).toBe(1);
  });

  it('an unchanged route in a new document keeps its retry state (budget); a changed one starts anew', () => {
    const policy: { current: CompiledPolicy | undefined } = inboundPolicy(section);
    const h = routeLayer({ policy, direction: 'inbound', metrics, log })(() => undefined);
    const first = ctxFor('/other');
    h(first);
    policy.current = inboundPolicy(section).current;
    const again = ctxFor('/other');
    h(again);
    expect(again.route).not.toBe(first.route); // a new document's object
    expect(again.retry).toBe(first.retry);
    policy.current = inboundPolicy({ routes: [{ retries: { attempts: 2 } }] }).current;
    const changed = ctxFor('/other');
    h(changed);
    expect(changed.retry).not.toBe(first.retry);
    expect((changed.retry as RouteRetry | undefined)?.attempts).toBe(2);
  });

  it('outbound: the route of the section for the destination', () => {
    const doc = parsePolicyDocument(
      JSON.stringify({
        apiVersion: 'remora.dev/v1',
        kind: 'PolicySet',
        policies: [
          { name: 'out', outbound: [{ destinations: ['127.0.0.1:8080'], routes: [{ timeoutMs: 1500 }] }] },
        ],
      }),
    );
    const policy = { current: compilePolicy(doc, { namespace: undefined, workload: undefined }, 'v') };
    const h = routeLayer({ policy, direction: 'outbound', metrics, log })(() => undefined);
    const ctx = ctxFor('/x', 'outbound');
    h(ctx);
    expect(ctx.route?.timeoutMs).toBe(1500);
  });
});
