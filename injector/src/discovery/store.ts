/**
 * The discovery map the injector serves: service address (`ClusterIP:port`) → endpoints. Sources
 * (the static file now; Kubernetes informers later) replace it whole; only the destinations
 * whose endpoints changed are announced, and only to the streams subscribed to them, so fan-out
 * grows with what proxies use, not with cluster size.
 */

export interface WireEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly meshed: boolean;
  readonly identity?: string;
  /** what the endpoint serves, for the proxies' destination labels (docs/telemetry.md) */
  readonly service?: string;
  readonly workload?: string;
  readonly namespace?: string;
}

/** A value fit for those labels (the proxy refuses others): a Kubernetes name or label value. */
export const LABEL_VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

/** The label fields of `src` that are strings fit for a label, the others left out. */
export function labelFields(src: {
  readonly service?: unknown;
  readonly workload?: unknown;
  readonly namespace?: unknown;
}): Pick<WireEndpoint, 'service' | 'workload' | 'namespace'> {
  const out: { service?: string; workload?: string; namespace?: string } = {};
  for (const k of ['service', 'workload', 'namespace'] as const) {
    const v = src[k];
    if (typeof v === 'string' && LABEL_VALUE.test(v)) out[k] = v;
  }
  return out;
}

export type Listener = (endpoints: readonly WireEndpoint[] | null) => void;

export class DiscoveryStore {
  private map = new Map<string, readonly WireEndpoint[]>();
  /** serialized form per destination, to tell a change from a rewrite of the same thing */
  private shapes = new Map<string, string>();
  private readonly listeners = new Map<string, Set<Listener>>();

  get(dest: string): readonly WireEndpoint[] | null {
    return this.map.get(dest) ?? null;
  }

  get size(): number {
    return this.map.size;
  }

  /** Replaces the whole map; tells each subscriber of a destination that changed. */
  replace(next: ReadonlyMap<string, readonly WireEndpoint[]>): string[] {
    const shapes = new Map<string, string>();
    for (const [k, v] of next) shapes.set(k, JSON.stringify(v));
    const changed: string[] = [];
    for (const k of new Set([...shapes.keys(), ...this.shapes.keys()]))
      if (shapes.get(k) !== this.shapes.get(k)) changed.push(k);
    this.map = new Map(next);
    this.shapes = shapes;
    for (const k of changed) for (const l of this.listeners.get(k) ?? []) l(this.get(k));
    return changed;
  }

  /** Calls `fn` on every change of `dest`; returns the unsubscribe function. */
  subscribe(dest: string, fn: Listener): () => void {
    let set = this.listeners.get(dest);
    if (!set) this.listeners.set(dest, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(dest);
    };
  }

  /** Open subscriptions (all streams, all destinations). */
  subscriptions(): number {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }
}
