/**
 * Upgrade leases in Kubernetes (docs/upgrades.md): coordination.k8s.io Leases named
 * `remora-engine-upgrade-<slot>` in the injector's namespace, slots 0 .. maxConcurrent-1. A
 * proxy holds one slot while it upgrades; a slot is claimed by create (absent) or by replace on
 * the resourceVersion read (expired), so two injector replicas racing for the last slot cannot
 * both win: the bound holds across replicas, and a release reaching another replica than the
 * acquire still frees the slot. An expired slot (a proxy that died holding it) is taken over.
 */
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import type { Lease, LeaseVerdict } from './leases.js';
import type { LeaseStore } from './routes.js';

export const LEASE_PREFIX = 'remora-engine-upgrade-';
const LABEL = 'remora.dev/engine-upgrade';
const A_VERSION = 'remora.dev/engine-version';
const A_POD = 'remora.dev/engine-pod';
/**
 * When it was granted, as an annotation: client-node writes a Date as milliseconds, which the
 * API server refuses for the spec's MicroTime fields (it wants six fractional digits).
 */
const A_GRANTED = 'remora.dev/engine-granted-at';

function decode(l: V1Lease): Lease | undefined {
  const holder = l.spec?.holderIdentity;
  const granted = l.metadata?.annotations?.[A_GRANTED];
  const seconds = l.spec?.leaseDurationSeconds;
  if (holder === undefined || granted === undefined || seconds === undefined) return undefined;
  const grantedAt = Date.parse(granted);
  if (!Number.isFinite(grantedAt)) return undefined;
  return {
    holder,
    pod: l.metadata?.annotations?.[A_POD] ?? '?',
    version: l.metadata?.annotations?.[A_VERSION] ?? '?',
    grantedAt,
    expiresAt: grantedAt + seconds * 1000,
  };
}

const conflict = (err: unknown): boolean => {
  const code = (err as { code?: number }).code;
  return code === 409 || code === 404;
};

export class KubeLeases implements LeaseStore {
  constructor(
    private readonly api: CoordinationV1Api,
    private readonly namespace: string,
    private readonly now: () => number = Date.now,
  ) {}

  private async slots(): Promise<Map<string, V1Lease>> {
    const list = await this.api.listNamespacedLease({
      namespace: this.namespace,
      labelSelector: `${LABEL}=true`,
    });
    return new Map(list.items.map((l) => [l.metadata?.name ?? '', l]));
  }

  async acquire(
    holder: string,
    pod: string,
    version: string,
    maxConcurrent: number,
    leaseSeconds: number,
  ): Promise<{ verdict: LeaseVerdict; expired: Lease[] }> {
    const t = this.now();
    const slots = await this.slots();
    const expired: Lease[] = [];
    let holders = 0;
    let free: { name: string; lease: V1Lease | undefined } | undefined;
    for (const l of slots.values()) {
      const info = decode(l);
      if (info === undefined || info.expiresAt <= t) continue;
      holders++;
      // a holder asking again (a retry after a lost answer) keeps its slot
      if (info.holder === holder && info.version === version)
        return { verdict: { granted: true, holders, maxConcurrent, expiresAt: info.expiresAt }, expired };
    }
    for (let i = 0; i < maxConcurrent && free === undefined; i++) {
      const name = `${LEASE_PREFIX}${i}`;
      const l = slots.get(name);
      const info = l === undefined ? undefined : decode(l);
      if (l === undefined) free = { name, lease: undefined };
      else if (info === undefined || info.expiresAt <= t || info.holder === holder) {
        if (info !== undefined && info.holder !== holder) expired.push(info);
        free = { name, lease: l };
      }
    }
    const denied = {
      verdict: {
        granted: false as const,
        holders,
        maxConcurrent,
        retryAfterSeconds: Math.min(10, Math.max(1, leaseSeconds / 20)),
      },
      expired,
    };
    if (free === undefined || holders >= maxConcurrent) return denied;
    const body: V1Lease = {
      ...free.lease,
      metadata: {
        ...free.lease?.metadata,
        name: free.name,
        labels: { ...free.lease?.metadata?.labels, [LABEL]: 'true', 'app.kubernetes.io/part-of': 'remora' },
        annotations: {
          ...free.lease?.metadata?.annotations,
          [A_VERSION]: version,
          [A_POD]: pod,
          [A_GRANTED]: new Date(t).toISOString(),
        },
      },
      spec: { holderIdentity: holder, leaseDurationSeconds: leaseSeconds },
    };
    try {
      if (free.lease === undefined) await this.api.createNamespacedLease({ namespace: this.namespace, body });
      else await this.api.replaceNamespacedLease({ namespace: this.namespace, name: free.name, body });
    } catch (err) {
      if (conflict(err)) return denied; // another replica took it first
      throw err;
    }
    return {
      verdict: { granted: true, holders: holders + 1, maxConcurrent, expiresAt: t + leaseSeconds * 1000 },
      expired,
    };
  }

  async release(holder: string): Promise<Lease | undefined> {
    for (const [name, l] of await this.slots()) {
      const info = decode(l);
      if (info?.holder !== holder) continue;
      try {
        await this.api.deleteNamespacedLease({
          namespace: this.namespace,
          name,
          body: { preconditions: { resourceVersion: l.metadata?.resourceVersion ?? '' } },
        });
      } catch (err) {
        if (!conflict(err)) throw err;
        return undefined; // gone or taken over meanwhile
      }
      return info;
    }
    return undefined;
  }
}
