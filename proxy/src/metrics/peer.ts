/**
 * Who the other side is, for the peer labels (DESIGN §7): inbound, from the identity the mTLS
 * caller proved; outbound, from the discovery entry of the endpoint. Pure functions, called once
 * per connection or endpoint (the results key ProxyMetrics' bounded child cache).
 */
import type { Peer } from './proxy.js';

/** The fields of a discovery endpoint the labels come from (discovery/static.ts). */
export interface PeerSource {
  readonly identity: string | undefined;
  readonly service?: string | undefined;
  readonly workload?: string | undefined;
  readonly namespace?: string | undefined;
}

const SPIFFE = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** Namespace and service account of `spiffe://<td>/ns/<ns>/sa/<sa>`; undefined for other forms. */
export function parseSpiffe(identity: string): { namespace: string; serviceAccount: string } | undefined {
  const m = SPIFFE.exec(identity);
  return m === null ? undefined : { namespace: m[1] as string, serviceAccount: m[2] as string };
}

/**
 * The caller of an mTLS connection: its identity, the namespace in it, and the workload that
 * discovery maps the identity to; without that, the service account name (an identity does not
 * name a workload, and Kubernetes workloads usually run as a service account of their name).
 */
export function inboundPeer(identity: string, workloadOf?: (identity: string) => string | undefined): Peer {
  const id = parseSpiffe(identity);
  return {
    identity,
    namespace: id?.namespace,
    workload: workloadOf?.(identity) ?? id?.serviceAccount,
  };
}

/** The destination an endpoint stands for: what discovery says, the namespace else from its identity. */
export function endpointPeer(ep: PeerSource): Peer {
  return {
    service: ep.service,
    workload: ep.workload,
    namespace: ep.namespace ?? (ep.identity === undefined ? undefined : parseSpiffe(ep.identity)?.namespace),
    identity: ep.identity,
  };
}

/**
 * The destination a connection to a service goes to before an endpoint is chosen (connection
 * series): each field the service's endpoints agree on, `undefined` where they differ.
 */
export function servicePeer(eps: readonly PeerSource[]): Peer {
  if (eps.length === 0) return {};
  const first = endpointPeer(eps[0] as PeerSource);
  let { service, workload, namespace, identity } = first;
  for (let i = 1; i < eps.length; i++) {
    const p = endpointPeer(eps[i] as PeerSource);
    if (p.service !== service) service = undefined;
    if (p.workload !== workload) workload = undefined;
    if (p.namespace !== namespace) namespace = undefined;
    if (p.identity !== identity) identity = undefined;
  }
  return { service, workload, namespace, identity };
}
