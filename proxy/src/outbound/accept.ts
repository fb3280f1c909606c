/**
 * Outbound accept: a redirected connection goes where the app dialled (its original
 * destination); one that was not redirected goes to REMORA_OUTBOUND_TARGET.
 */
import type { Socket } from 'node:net';
import { originalDestination } from '../capture/origdst.js';
import type { Target } from '../config/config.js';
import { isListenerItself } from '../tcp/connection.js';

export function outboundDestination(socket: Socket, configured: Target | undefined): Target | undefined {
  const orig = originalDestination(socket);
  if (orig === undefined || isListenerItself(socket, orig.address, orig.port)) return configured;
  return { host: orig.address, port: orig.port };
}
