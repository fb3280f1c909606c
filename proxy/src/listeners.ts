/**
 * Who owns a listening socket is separate from what happens to its connections (DESIGN §1, §5):
 * a later supervisor binds every port and hands the sockets to the engine, either as a
 * `net.Server` received over IPC (`child.send(msg, server)`) or as an inherited fd. The engine
 * binds its own socket only for a listener nobody handed in. Either way the engine only attaches
 * an accept callback; it closes only what it opened itself.
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { ListenerName } from './contract.js';

export { LISTENER_NAMES } from './contract.js';
export type { ListenerName } from './contract.js';

/** A socket handed in from outside: an already listening server, or a listening fd. */
/**
 * An inherited fd carries the backlog its owner bound with: listen() on it again resets the
 * kernel backlog of the shared socket, and Node's default (511) would shrink it.
 */
export type HandedListener = net.Server | { readonly fd: number; readonly backlog?: number };
export type HandedListeners = Partial<Record<ListenerName, HandedListener>>;

export type AcceptFn = (socket: Socket) => void;

export interface Listener {
  readonly name: ListenerName;
  /** true when the engine bound it (and so closes it); false when it was handed in */
  readonly owned: boolean;
  readonly server: net.Server;
  address(): AddressInfo;
  /** Stops giving new connections to `accept`; closes the socket only if the engine owns it. */
  stopAccepting(): Promise<void>;
}

export interface ListenerSpec {
  readonly name: ListenerName;
  readonly host: string;
  readonly port: number;
  readonly accept: AcceptFn;
  readonly handed?: HandedListener | undefined;
}

// allowHalfOpen: an opaque relay must pass a client's FIN on without closing its own side.
const SERVER_OPTIONS: net.ServerOpts = { allowHalfOpen: true, noDelay: true };

export async function openListener(spec: ListenerSpec): Promise<Listener> {
  const handed = spec.handed;
  if (handed instanceof net.Server) {
    if (!handed.listening) throw new Error(`${spec.name}: the handed-in server is not listening`);
    handed.on('connection', spec.accept);
    return makeListener(spec, handed, false);
  }
  const server = net.createServer(SERVER_OPTIONS, spec.accept);
  if (handed !== undefined) {
    // An inherited fd: the supervisor still holds its own copy, so closing ours is harmless.
    await listen(server, { fd: handed.fd, backlog: handed.backlog ?? 1024 });
  } else {
    await listen(server, { host: spec.host, port: spec.port, backlog: 1024 });
  }
  return makeListener(spec, server, handed === undefined);
}

function listen(
  server: net.Server,
  opts: net.ListenOptions | { fd: number; backlog: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    // `{fd}` is a listen handle in Node's API; the typings only know ListenOptions.
    server.listen(opts as net.ListenOptions, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function makeListener(spec: ListenerSpec, server: net.Server, owned: boolean): Listener {
  const handedFd = spec.handed !== undefined && !(spec.handed instanceof net.Server);
  let stopped = false;
  return {
    name: spec.name,
    owned,
    server,
    address: () => server.address() as AddressInfo,
    stopAccepting: () => {
      if (stopped) return Promise.resolve();
      stopped = true;
      server.off('connection', spec.accept);
      if (!owned && !handedFd) return Promise.resolve();
      // Our own socket (or our copy of an inherited fd): close it so the kernel stops queueing
      // connections for us. Existing connections are untouched; close()'s callback would wait
      // for them to end, which is drain's business, so do not wait for it.
      server.close();
      return Promise.resolve();
    },
  };
}
