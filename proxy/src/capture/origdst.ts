/**
 * Original destination of a redirected connection (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST),
 * through the native addon in proxy/native. The addon is loaded once; if it is missing (a
 * build without node-gyp), every lookup answers "not redirected" and `addonLoadError()` says
 * why, so explicit mode still works and main can log the reason once.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

type Lookup = (fd: number) => OriginalDestination | null;

let lookup: Lookup | undefined;
let loadError: Error | undefined;
try {
  const require = createRequire(import.meta.url);
  // src/capture and dist/capture are both two levels below proxy/.
  const addon = require('../../native/build/Release/origdst.node') as { originalDst: Lookup };
  lookup = addon.originalDst;
} catch (err) {
  loadError = err as Error;
}

/** Why the addon could not be loaded, or undefined when it is loaded. */
export function addonLoadError(): Error | undefined {
  return loadError;
}

/** Looks up the original destination of a raw socket fd; null when there is none. */
export function originalDestinationOfFd(fd: number): OriginalDestination | null {
  return lookup === undefined ? null : lookup(fd);
}

/**
 * The destination the client meant before iptables redirected it to us, or undefined when
 * the connection was not redirected (explicit mode, tests) or the socket has no fd.
 */
export function originalDestination(socket: Socket): OriginalDestination | undefined {
  if (lookup === undefined) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  return lookup(fd) ?? undefined;
}
