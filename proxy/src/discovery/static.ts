/**
 * Discovery from a static file (REMORA_DISCOVERY_FILE): the same map the injector's stream
 * serves, ClusterIP:port → endpoints, for tests and the demo. The file is re-read when it
 * changes; a bad version is reported and the last good map kept (DESIGN §8).
 *
 *   { "services": { "10.96.0.10:80": { "endpoints": [
 *       { "ip": "10.1.0.3", "port": 8080, "meshed": true,
 *         "identity": "spiffe://cluster.local/ns/shop/sa/web" } ] } } }
 *
 * IPv6 services and endpoints are written `[fd00::10]:80` and `"ip": "fd00:1::3"`. An endpoint
 * may name what it is for the metrics' destination labels (docs/telemetry.md): `"service"`
 * (`web.shop`), `"workload"` (`web`), `"namespace"` (`shop`); absent, they read `unknown`
 * (the namespace then comes from the identity).
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { isPort, parseIpAddress, parsePort, parseSpiffeId } from '../values.js';
import { PORTS } from '../contract.js';
import type { Logger } from '../log.js';

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  readonly meshed: boolean;
  /** SPIFFE identity the endpoint's proxy must prove (meshed endpoints only) */
  readonly identity: string | undefined;
  /** the endpoint proxy's tunnel port (15008 unless the file says otherwise: loopback tests) */
  readonly tunnelPort: number;
  /** `ip:port`, built once */
  readonly key: string;
  /** what the endpoint serves, for the destination labels (optional in the file) */
  readonly service?: string | undefined;
  readonly workload?: string | undefined;
  readonly namespace?: string | undefined;
}

/** A Kubernetes name or label value, at most 253 characters: safe as a metric label value. */
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

export type DiscoveryMap = ReadonlyMap<string, readonly Endpoint[]>;

/** Where a proxy looks destinations up; the stream client and the static file both fill it. */
export interface Discovery {
  /** endpoints of the service at `host:port` (a ClusterIP), or undefined when not a known service */
  lookup(key: string): readonly Endpoint[] | undefined;
  /**
   * A promise when the answer for `key` is not known yet (a stream subscribes on first use),
   * undefined when `lookup` already answers. Absent for sources that know everything up front.
   */
  pending?(key: string): Promise<readonly Endpoint[] | undefined> | undefined;
  /**
   * The workload of the endpoints that prove `identity`, when discovery knows it and they agree
   * (the inbound source label); undefined otherwise. Asked once per connection.
   */
  workloadOf?(identity: string): string | undefined;
  close(): void;
}

const hostPort = (ip: string, port: number): string =>
  ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;

/**
 * An IPv6 address in its one canonical text form (lower case, `::` compressed, RFC 5952), the
 * form the kernel reports an original destination in: `FD00:0::A` in a file must still match
 * a connection to fd00::a, or a meshed destination would silently go out in plaintext.
 */
const canonicalIp = (ip: string): string =>
  // Not the dotted forms (::ffff:1.2.3.4), which URL would rewrite into hex groups.
  ip.includes(':') && !ip.includes('.') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;

/** Parses the file's contents; throws listing every problem. */
export function parseDiscovery(text: string): DiscoveryMap {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  const services = (doc as { services?: unknown } | null)?.services;
  if (services === null || typeof services !== 'object' || Array.isArray(services))
    throw new Error('needs an object "services" of "ip:port" → {endpoints: [...]}');
  const errors: string[] = [];
  const out = new Map<string, Endpoint[]>();
  for (const [addr, svc] of Object.entries(services as Record<string, unknown>)) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(addr);
    if (!m || !parseIpAddress((m[1] ?? m[2]) as string).ok || !parsePort(m[3] as string).ok) {
      errors.push(`service ${JSON.stringify(addr)}: not ip:port`);
      continue;
    }
    const eps = (svc as { endpoints?: unknown } | null)?.endpoints;
    if (!Array.isArray(eps)) {
      errors.push(`service ${addr}: needs an "endpoints" array`);
      continue;
    }
    const list: Endpoint[] = [];
    eps.forEach((e: unknown, i) => {
      const { ip, port, meshed, identity, tunnelPort, service, workload, namespace } = (e ?? {}) as Record<
        string,
        unknown
      >;
      const badName = (
        [
          ['service', service],
          ['workload', workload],
          ['namespace', namespace],
        ] as const
      ).find(([, v]) => v !== undefined && (typeof v !== 'string' || !NAME.test(v)));
      const where = `service ${addr} endpoint ${i}`;
      if (typeof ip !== 'string' || !parseIpAddress(ip).ok)
        errors.push(`${where}: "ip" ${JSON.stringify(ip)} is not an IP address`);
      else if (!isPort(port)) errors.push(`${where}: "port" is not a port`);
      else if (meshed !== undefined && typeof meshed !== 'boolean')
        errors.push(`${where}: "meshed" is not a boolean`);
      else if (meshed === true && (typeof identity !== 'string' || !parseSpiffeId(identity).ok))
        errors.push(
          `${where}: a meshed endpoint needs a spiffe:// "identity", not ${JSON.stringify(identity)}`,
        );
      else if (tunnelPort !== undefined && !isPort(tunnelPort))
        errors.push(`${where}: "tunnelPort" is not a port`);
      else if (badName !== undefined)
        errors.push(
          `${where}: "${badName[0]}" is not a Kubernetes name or label value (letters, digits, '.', '_', '-')`,
        );
      else
        list.push(
          Object.freeze({
            ip: canonicalIp(ip),
            port,
            meshed: meshed === true,
            identity: meshed === true ? (identity as string) : undefined,
            tunnelPort: typeof tunnelPort === 'number' ? tunnelPort : PORTS.tunnel,
            key: hostPort(canonicalIp(ip), port),
            ...(service === undefined ? {} : { service: service as string }),
            ...(workload === undefined ? {} : { workload: workload as string }),
            ...(namespace === undefined ? {} : { namespace: namespace as string }),
          }),
        );
    });
    out.set(hostPort(canonicalIp((m[1] ?? m[2]) as string), Number(m[3])), list);
  }
  if (errors.length > 0) throw new Error(errors.join('; '));
  return out;
}

/** Reads the file now (throws when the first read is bad) and follows its changes. */
export function staticDiscovery(file: string, log: Logger, pollMs = 500): Discovery {
  let map = parseDiscovery(readFileSync(file, 'utf8'));
  const reload = (): void => {
    try {
      map = parseDiscovery(readFileSync(file, 'utf8'));
      log.info({ event: 'discovery_reloaded', file, services: map.size }, 'discovery file reloaded');
    } catch (err) {
      log.warn(
        { event: 'discovery_invalid', file, err: (err as Error).message },
        'discovery file invalid: keeping the last good map',
      );
    }
  };
  watchFile(file, { interval: pollMs, persistent: false }, reload);
  let byIdentity: { map: DiscoveryMap; workloads: ReadonlyMap<string, string | undefined> } | undefined;
  return {
    lookup: (key) => map.get(key),
    workloadOf: (identity) => {
      if (byIdentity?.map !== map) byIdentity = { map, workloads: workloadsByIdentity(map.values()) };
      return byIdentity.workloads.get(identity);
    },
    close: () => unwatchFile(file, reload),
  };
}

/**
 * identity → workload over these endpoint lists: the workload when every endpoint that proves
 * the identity and names a workload names the same one, else undefined.
 */
export function workloadsByIdentity(
  lists: Iterable<readonly Endpoint[] | undefined>,
): ReadonlyMap<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const eps of lists) {
    for (const e of eps ?? []) {
      if (e.identity === undefined || e.workload === undefined) continue;
      const seen = out.get(e.identity);
      if (!out.has(e.identity)) out.set(e.identity, e.workload);
      else if (seen !== e.workload) out.set(e.identity, undefined);
    }
  }
  return out;
}
