/**
 * Inbound accept: a redirected connection goes to the app on 127.0.0.1 at the port the client
 * dialled (DESIGN §3); one that was not redirected (its original destination is this listener
 * itself, or there is none) goes to REMORA_INBOUND_TARGET.
 */
import type { Socket } from 'node:net';
import { originalDestination } from '../capture/origdst.js';
import type { Target } from '../config/config.js';
import { isListenerItself } from '../tcp/connection.js';

const APP_HOST = '127.0.0.1';

export function inboundDestination(socket: Socket, configured: Target | undefined): Target | undefined {
  const orig = originalDestination(socket);
  if (orig === undefined || isListenerItself(socket, orig.address, orig.port)) return configured;
  return { host: APP_HOST, port: orig.port };
}
