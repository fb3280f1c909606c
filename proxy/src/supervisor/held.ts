/**
 * The data listening sockets, owned by the supervisor for the life of the pod (DESIGN §4).
 * Each is bound once with a net.Server, then kept only as a dup of its fd and the server is
 * closed: the socket stays in LISTEN, no event loop here accepts on it, and connections that
 * arrive while no engine is up wait in the kernel backlog instead of being refused.
 */
import net from 'node:net';
import { closeFd, dupFd } from './fd.js';
import type { ListenerName } from './ipc.js';

export interface HeldListener {
  readonly name: ListenerName;
  readonly fd: number;
  readonly host: string;
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
}

function fdOf(server: net.Server): number {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw new Error('listening socket has no fd (not a POSIX TCP socket?)');
  return fd;
}

export function holdListener(
  name: ListenerName,
  host: string,
  port: number,
  backlog: number,
): Promise<HeldListener> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    // An IPv6 twin beside an IPv4 listener on the same port: without ipv6Only, [::] would also
    // take the IPv4 addresses and clash with 0.0.0.0 (EADDRINUSE).
    server.listen({ host, port, backlog, ipv6Only: host.includes(':') }, () => {
      let held: HeldListener;
      try {
        const addr = server.address() as net.AddressInfo;
        held = Object.freeze({ name, fd: dupFd(fdOf(server)), host, port: addr.port });
      } catch (err) {
        server.close();
        reject(err as Error);
        return;
      }
      server.close(() => resolve(held));
    });
  });
}

/** Closes the supervisor's copy; the socket leaves LISTEN once no engine holds one either. */
export function releaseListener(l: HeldListener): void {
  closeFd(l.fd);
}

/** A server accepting on its own copy of a held socket (the degraded relay, the resetter). */
export function acceptOn(
  l: HeldListener,
  backlog: number,
  onConnection: (socket: net.Socket) => void,
): net.Server {
  const server = net.createServer(onConnection);
  server.on('error', () => undefined);
  server.listen({ fd: dupFd(l.fd), backlog });
  return server;
}
