/**
 * What the supervisor does with the data sockets while no engine is ready (DESIGN §4):
 * `relay` (failure mode `degrade`): accept and relay at L4 to the original destination, with
 * no mTLS, policy or L7 telemetry; `reset` (`fail-closed`/`restart` after the wait bound, or
 * `degrade` under strict mTLS): accept and reset at once, so clients fail fast instead of
 * hanging. Connections already relayed keep going after an engine is back; only new ones
 * switch.
 *
 * The relay follows the engine's rules where it can without L7: inbound goes to the pod IP
 * (inbound/target.ts), and an inbound connection to a port an authorization policy governs is
 * reset, not relayed past the control (guard.ts; DESIGN §4). Outbound relaying goes on.
 */
import net from 'node:net';
import type { Logger } from './log.js';
import { originalDestination } from '../capture/origdst.js';
import { appTarget } from '../inbound/target.js';
import type { InboundDelivery } from '../inbound/target.js';
import type { GuardReason } from './guard.js';
import { acceptOn } from './held.js';
import type { HeldListener } from './held.js';
import type { ListenerName } from './ipc.js';

export type StandInMode = 'relay' | 'reset';

export interface Target {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
}

export interface StandInCounters {
  relayed(listener: ListenerName): void;
  reset(listener: ListenerName, reason: string): void;
}

/** The IPv4 listener an IPv6 twin stands in for (its explicit-mode target is that one's). */
export function ipv4Name(name: ListenerName): ListenerName {
  if (name === 'inbound6') return 'inbound';
  if (name === 'outbound6') return 'outbound';
  if (name === 'tunnel6') return 'tunnel';
  return name;
}

function isInbound(name: ListenerName): boolean {
  return name === 'inbound' || name === 'inbound6';
}

/** Inbound goes to the app by the engine's rule (pod IP), outbound to where the app meant to go. */
export function relayTarget(
  name: ListenerName,
  socket: net.Socket,
  targets: Readonly<Partial<Record<ListenerName, Target>>>,
  delivery: InboundDelivery,
): Target | undefined {
  const orig = originalDestination(socket);
  // conntrack answers for connections that were not NATed too, with our own address.
  const redirected =
    orig !== undefined && !(orig.port === socket.localPort && orig.address === socket.localAddress);
  if (redirected && orig !== undefined) {
    if (isInbound(name)) return appTarget(delivery, orig.port, orig.family === 'IPv6');
    if (name === 'outbound' || name === 'outbound6') return { host: orig.address, port: orig.port };
  }
  return targets[ipv4Name(name)];
}

export class StandIn {
  private servers: net.Server[] = [];
  private current: StandInMode | undefined;
  private readonly open = new Set<net.Socket>();
  /** relayed client connections per listener, for the cap */
  private readonly relaying = new Map<ListenerName, number>();

  constructor(
    private readonly listeners: readonly HeldListener[],
    private readonly targets: Readonly<Partial<Record<ListenerName, Target>>>,
    private readonly delivery: InboundDelivery,
    /** why an inbound connection to a port must be reset (policy governs it), or undefined */
    private readonly guard: (port: number) => GuardReason | undefined,
    private readonly backlog: number,
    private readonly counters: StandInCounters,
    private readonly log: Logger,
    /** REMORA_MAX_CONNECTIONS: relayed connections per listener; more are reset (`over_cap`) */
    private readonly maxConnections = Infinity,
  ) {}

  get mode(): StandInMode | undefined {
    return this.current;
  }

  start(mode: StandInMode): void {
    if (this.current === mode) return;
    this.stop();
    this.current = mode;
    for (const l of this.listeners) {
      // The mesh tunnel carries mTLS that only an engine can terminate.
      const m: StandInMode = ipv4Name(l.name) === 'tunnel' ? 'reset' : mode;
      this.servers.push(
        acceptOn(l, this.backlog, (s) => (m === 'relay' ? this.relay(l, s) : this.reset(l, s, mode))),
      );
    }
  }

  /** Stops accepting; relayed connections continue to their natural end. */
  stop(): void {
    for (const s of this.servers) s.close();
    this.servers = [];
    this.current = undefined;
  }

  /** Destroys relayed connections too (shutdown). */
  destroyAll(): void {
    this.stop();
    for (const s of this.open) s.destroy();
  }

  private reset(l: HeldListener, socket: net.Socket, why: StandInMode | GuardReason | 'over_cap'): void {
    this.counters.reset(l.name, why === 'relay' ? 'no_target' : why === 'reset' ? 'no_engine' : why);
    socket.on('error', () => undefined);
    socket.resetAndDestroy();
  }

  private relay(l: HeldListener, client: net.Socket): void {
    const target = relayTarget(l.name, client, this.targets, this.delivery);
    if (target === undefined) {
      this.reset(l, client, 'relay');
      return;
    }
    const refused = isInbound(l.name) ? this.guard(target.port) : undefined;
    if (refused !== undefined) {
      if (this.log.isLevelEnabled('debug'))
        this.log.debug(
          { event: 'degraded_relay_refused', listener: l.name, port: target.port, reason: refused },
          'degraded relay: the port is governed by an authorization policy',
        );
      this.reset(l, client, refused);
      return;
    }
    const relaying = this.relaying.get(l.name) ?? 0;
    if (relaying >= this.maxConnections) {
      this.reset(l, client, 'over_cap');
      return;
    }
    this.relaying.set(l.name, relaying + 1);
    client.once('close', () => this.relaying.set(l.name, (this.relaying.get(l.name) ?? 1) - 1));
    this.counters.relayed(l.name);
    const upstream = net.connect({
      host: target.host,
      port: target.port,
      ...(target.localAddress !== undefined ? { localAddress: target.localAddress } : {}),
    });
    this.open.add(client);
    this.open.add(upstream);
    const done = (): void => {
      this.open.delete(client);
      this.open.delete(upstream);
    };
    client.on('close', done);
    upstream.on('close', done);
    // An error on one side resets the other, so a failure is visible as a failure.
    client.on('error', () => upstream.resetAndDestroy());
    upstream.on('error', (err) => {
      if (this.log.isLevelEnabled('debug'))
        this.log.debug({ listener: l.name, target, err: err.message }, 'degraded relay upstream error');
      if (!client.destroyed) client.resetAndDestroy();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
