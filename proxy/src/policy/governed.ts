/**
 * Which inbound ports an authorization policy governs, as plain data the supervisor can hold
 * (DESIGN §4): while no engine runs, its degraded relay resets inbound connections to these
 * ports instead of relaying them past the control. Computed from the document the engine (or
 * the supervisor, from the same file) accepted; sent over IPC with every heartbeat.
 */
import { isPort } from '../values.js';
import { selects } from './compile.js';
import type { PolicyDocument, WorkloadRef } from './types.js';

export interface AuthzPorts {
  /** a section without `ports` carries authorization: every port is governed */
  readonly all: boolean;
  readonly ports: readonly number[];
}

export const NO_AUTHZ_PORTS: AuthzPorts = Object.freeze({ all: false, ports: Object.freeze([]) });

/** Every port covered by an inbound section (of a policy selecting `self`) with authorization. */
export function authzPorts(doc: PolicyDocument, self: WorkloadRef): AuthzPorts {
  let all = false;
  const ports = new Set<number>();
  for (const p of doc.policies) {
    if (!selects(p, self)) continue;
    for (const section of p.inbound ?? []) {
      const a = section.authorization;
      // `default: allow` without rules is no control; anything else is.
      if (a === undefined || ((a.rules ?? []).length === 0 && (a.default ?? 'allow') === 'allow')) continue;
      if (section.ports === undefined || section.ports.length === 0) all = true;
      else for (const port of section.ports) ports.add(port);
    }
  }
  if (!all && ports.size === 0) return NO_AUTHZ_PORTS;
  return Object.freeze({ all, ports: Object.freeze([...ports].sort((x, y) => x - y)) });
}

export function governsPort(g: AuthzPorts, port: number): boolean {
  return g.all || g.ports.includes(port);
}

/** Validates the shape that crossed the IPC channel. */
export function isAuthzPorts(v: unknown): v is AuthzPorts {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.all === 'boolean' && Array.isArray(o.ports) && o.ports.every(isPort);
}
