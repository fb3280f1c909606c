/**
 * What the degraded relay must not relay past (DESIGN §4): while no engine runs, an inbound
 * connection to a port an authorization policy governs is reset, not relayed.
 *
 * Where the governed ports come from, in this order:
 *   1. the policy file (REMORA_POLICY_FILE), read by the supervisor itself: it holds even when
 *      no engine ever came up (re-read when it changes, judged by stat; an unreadable or invalid
 *      file keeps the last good answer, as the engine keeps the last good policy);
 *   2. the engine's last heartbeat (its policy from the injector's stream, sent over IPC);
 *   3. a policy stream is configured but no engine ever reported: unknown, so every inbound
 *      connection is reset (never relay past a control we cannot see);
 *   4. no policy source at all: nothing is governed.
 */
import { readFileSync, statSync } from 'node:fs';
import { NO_AUTHZ_PORTS, authzPorts, governsPort, isAuthzPorts } from '../policy/governed.js';
import type { AuthzPorts } from '../policy/governed.js';
import type { PolicyDocument, WorkloadRef } from '../policy/types.js';
import type { Logger } from './log.js';

/** The policy parser (policy/document.ts and the YAML parser), loaded only when there is a file. */
let parsePolicy: ((text: string) => PolicyDocument) | undefined;

/** Loads the policy parser; main.ts awaits it before a guard with a policy file is made. */
export async function loadPolicyReader(): Promise<void> {
  parsePolicy ??= (await import('../policy/document.js')).parsePolicyDocument;
}

export interface InboundGuardOptions {
  readonly policyFile: string | undefined;
  /** the engine takes its policy from the injector's stream (no file) */
  readonly policyStream: boolean;
  readonly self: WorkloadRef;
  readonly log: Logger;
}

/** Why the degraded relay resets an inbound connection. */
export type GuardReason = 'policy' | 'policy_unknown';

export class InboundGuard {
  private reported: AuthzPorts | undefined;
  private file: { readonly key: string; readonly ports: AuthzPorts } | undefined;
  /** the file version that failed to parse, so it is read and logged once */
  private failedKey: string | undefined;

  constructor(private readonly o: InboundGuardOptions) {
    // Read now, while the file is the one main.ts checked: a later broken edit (which also stops
    // new engines from starting) then still has a last good answer.
    if (o.policyFile !== undefined) this.fromFile(o.policyFile);
  }

  /** An engine's heartbeat status field (validated: it crossed a process boundary). */
  report(v: unknown): void {
    if (isAuthzPorts(v)) this.reported = v;
  }

  /** undefined: relay; else why the connection to `port` is reset. */
  refuses(port: number): GuardReason | undefined {
    const g = this.current();
    if (g === undefined) return 'policy_unknown';
    return governsPort(g, port) ? 'policy' : undefined;
  }

  /** The governed ports as known now; undefined when unknown. */
  current(): AuthzPorts | undefined {
    if (this.o.policyFile !== undefined) return this.fromFile(this.o.policyFile) ?? this.reported;
    if (this.reported !== undefined) return this.reported;
    return this.o.policyStream ? undefined : NO_AUTHZ_PORTS;
  }

  private fromFile(path: string): AuthzPorts | undefined {
    let key: string;
    try {
      const st = statSync(path);
      key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return this.file?.ports;
    }
    if (this.file?.key === key) return this.file.ports;
    if (this.failedKey === key) return this.file?.ports;
    try {
      if (parsePolicy === undefined) throw new Error('the policy parser is not loaded (loadPolicyReader)');
      const ports = authzPorts(parsePolicy(readFileSync(path, 'utf8')), this.o.self);
      this.file = { key, ports };
      return ports;
    } catch (err) {
      this.failedKey = key;
      this.o.log.warn(
        { event: 'degraded_policy_unreadable', file: path, err: (err as Error).message },
        'degraded relay cannot read the policy file: keeping the last good answer',
      );
      return this.file?.ports;
    }
  }
}
