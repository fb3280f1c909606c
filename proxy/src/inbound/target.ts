/**
 * Where an inbound connection is delivered (DESIGN §3): to `<pod IP>:<target port>`, not to
 * 127.0.0.1, so that a listener the app binds to loopback only (pprof, a local Redis, another
 * sidecar's admin port) stays as private as it is without a mesh (Istio does the same since
 * 1.10). This holds for redirected plaintext (15006), for the tunnel (15008) whatever loopback
 * spelling the peer's `CONNECT` names, and for the supervisor's degraded relay.
 *
 * The connection to the pod IP leaves from the passthrough source (127.0.0.6 / ::6): the proxy's
 * own connection to its pod IP would otherwise be captured again into the inbound listener,
 * and remora-init never captures traffic from that source over lo (init/rules.ts).
 *
 * Exceptions: ports the pod names in `remora.dev/localhost-inbound-ports` go to 127.0.0.1 (the
 * app asked for it); without a pod IP (REMORA_POD_IP unset: explicit mode, tests outside a pod)
 * the delivery stays on loopback as before, and the engine says so at start.
 *
 * No dependencies beyond the contract: the supervisor imports this too.
 */
import { isIPv6 } from 'node:net';
import { INBOUND_PASSTHROUGH_SOURCE } from '../contract.js';

export interface AppTarget {
  readonly host: string;
  readonly port: number;
  /** source address to connect from; undefined: the kernel's choice */
  readonly localAddress?: string;
}

export interface InboundDelivery {
  /** undefined: no pod IP known, everything stays on loopback */
  readonly podIp: string | undefined;
  /** the passthrough source of the pod IP's family */
  readonly localAddress: string | undefined;
  readonly localhostPorts: ReadonlySet<number>;
}

export function inboundDelivery(
  podIp: string | undefined,
  localhostPorts: readonly number[],
): InboundDelivery {
  return Object.freeze({
    podIp,
    localAddress:
      podIp === undefined
        ? undefined
        : isIPv6(podIp)
          ? INBOUND_PASSTHROUGH_SOURCE.ipv6
          : INBOUND_PASSTHROUGH_SOURCE.ipv4,
    localhostPorts: new Set(localhostPorts),
  });
}

const LOOPBACK4 = '127.0.0.1';
const LOOPBACK6 = '::1';

/**
 * The app's address for `port`. `loopback6` asks for ::1 where loopback is the answer (the
 * peer's `CONNECT [::1]:<port>` to an annotated port, or an IPv6 connection without a pod IP).
 */
export function appTarget(d: InboundDelivery, port: number, loopback6 = false): AppTarget {
  if (d.podIp === undefined || d.localhostPorts.has(port))
    return { host: loopback6 ? LOOPBACK6 : LOOPBACK4, port };
  return { host: d.podIp, port, localAddress: d.localAddress as string };
}
