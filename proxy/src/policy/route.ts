/**
 * The route layer (docs/traffic.md): picks the request's policy route ONCE and leaves it on the
 * context (`ctx.route`, and `ctx.retry` when the route retries) for the timeout layer and the
 * forwarder. Shared options of every traffic layer live here too.
 */
import { performance } from 'node:perf_hooks';
import type { Layer } from '../http/layer.js';
import type { Logger } from '../log.js';
import type { Direction } from '../metrics/proxy.js';
import type { PolicyMetrics } from './metrics.js';
import { RETRY_DEFAULTS, RouteRetry } from './retry.js';
import type { PolicySource, Route } from './types.js';

/** What every traffic layer factory takes (timeoutLayer, rateLimitLayer, routeLayer). */
export interface TrafficLayerOptions {
  readonly policy: PolicySource;
  readonly direction: Direction;
  readonly metrics: PolicyMetrics;
  readonly log: Logger;
  /** ms clock (default performance.now); tests pass a fake one */
  readonly now?: () => number;
}

export interface RouteLayerOptions extends TrafficLayerOptions {
  /** the retry budget's floor, retries per second any route may spend (default 10) */
  readonly minRetriesPerSecond?: number;
}

/** Retry state by route; kept across policy updates while the route stays the same. */
class RetryStates {
  private readonly byRoute = new WeakMap<Route, RouteRetry>();
  /** `<section key>\n<route as JSON>`: an unchanged route in a new document keeps its budget */
  private readonly byKey = new Map<string, RouteRetry>();

  constructor(private readonly o: Required<Omit<RouteLayerOptions, 'policy' | 'log'>>) {}

  of(sectionKey: string, route: Route): RouteRetry {
    const hit = this.byRoute.get(route);
    if (hit !== undefined) return hit;
    // Once per route object, i.e. per accepted document.
    const key = `${sectionKey}\n${JSON.stringify(route)}`;
    let r = this.byKey.get(key);
    if (r === undefined) {
      // Routes of earlier documents that are gone would otherwise stay forever.
      if (this.byKey.size >= 4096) this.byKey.clear();
      r = new RouteRetry(route.retries ?? {}, this.o);
      this.byKey.set(key, r);
    }
    this.byRoute.set(route, r);
    return r;
  }
}

/**
 * Sets `ctx.route` from the policy in force: inbound by target port, outbound by destination.
 * A request that takes a route with `retries` counts toward that route's retry budget.
 */
export function routeLayer(o: RouteLayerOptions): Layer {
  const states = new RetryStates({
    direction: o.direction,
    metrics: o.metrics,
    now: o.now ?? (() => performance.now()),
    minRetriesPerSecond: o.minRetriesPerSecond ?? RETRY_DEFAULTS.minRetriesPerSecond,
  });
  const inbound = o.direction === 'inbound';
  const policy = o.policy;
  return (next) => (ctx) => {
    const p = policy.current;
    if (p !== undefined) {
      const port = ctx.destination.port;
      const section = inbound ? p.inbound(port) : p.outbound(ctx.destinationKey, port);
      const route = section?.route(ctx);
      if (section !== undefined && route !== undefined) {
        ctx.route = route;
        if (route.retries !== undefined) {
          const r = states.of(section.key, route);
          r.budget.request();
          ctx.retry = r;
        }
      }
    }
    next(ctx);
  };
}
