/**
 * Inbound accept: a redirected connection goes to the app at the port the client dialled, on
 * the pod IP (inbound/target.ts, DESIGN §3); one that was not redirected (its original
 * destination is this listener itself, or there is none) goes to REMORA_INBOUND_TARGET.
 */
import type { Socket } from 'node:net';
import { originalDestination } from '../capture/origdst.js';
import type { Target } from '../config/config.js';
import { isListenerItself } from '../tcp/connection.js';
import { appTarget } from './target.js';
import type { InboundDelivery } from './target.js';

export function inboundDestination(
  socket: Socket,
  configured: Target | undefined,
  delivery: InboundDelivery,
): Target | undefined {
  const orig = originalDestination(socket);
  if (orig === undefined || isListenerItself(socket, orig.address, orig.port)) return configured;
  return appTarget(delivery, orig.port);
}
