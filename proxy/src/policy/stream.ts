/**
 * The policy from the injector's stream (REMORA_DISCOVERY_ADDRESS without REMORA_POLICY_FILE):
 * `GET /v1/policy?workload=<ns>/<name>` on the CA listener, the same TLS and injector identity
 * check as discovery. Lines: `{"version", "document"}` (the whole document text; `document:
 * null` = the control plane serves no policy), first a snapshot, then one per accepted change;
 * `{}` heartbeats. Every reconnect starts with a snapshot, so resync is free; while the stream
 * is down the last good policy stays in force.
 *
 * Readiness: the holder is ready at the first snapshot, or after `firstSnapshotMs` (then the
 * proxy serves without policy and says so) so a control plane that is down cannot keep every
 * restarting pod out of its Service.
 */
import { CA_PATHS } from '../contract.js';
import type { Target } from '../config/config.js';
import { ndjsonStream, StreamStatusError } from '../discovery/ndjson.js';
import type { Backoff, ClientCredentials, NdjsonStream } from '../discovery/ndjson.js';
import type { Logger } from '../log.js';
import type { PolicyHolder } from './holder.js';
import type { WorkloadRef } from './types.js';

export const FIRST_SNAPSHOT_MS = 5000;

export interface PolicyStreamOptions {
  readonly address: Target;
  readonly caBundle: string;
  readonly serverIdentity: string;
  readonly credentials?: ClientCredentials;
  readonly self: WorkloadRef;
  readonly holder: PolicyHolder;
  readonly log: Logger;
  readonly firstSnapshotMs?: number;
  readonly backoff?: Backoff;
}

/** The `workload` query value: `<namespace>/<workload>`, an unknown part left empty. */
export function workloadParam(self: WorkloadRef): string {
  return `${self.namespace ?? ''}/${self.workload ?? ''}`;
}

export class PolicyStream {
  private readonly stream: NdjsonStream;
  private readonly bound: NodeJS.Timeout;
  private readonly from: string;
  /** lines received on the current connection (0: the next document line is a snapshot) */
  private snapshots = 0;

  constructor(private readonly o: PolicyStreamOptions) {
    this.from = `stream ${o.address.host}:${o.address.port}`;
    this.bound = setTimeout(() => {
      if (o.holder.ready) return;
      o.log.warn(
        { event: 'policy_not_received', waitedMs: o.firstSnapshotMs ?? FIRST_SNAPSHOT_MS },
        'no policy from the control plane yet: serving without policy until it answers',
      );
      o.holder.markReady();
    }, o.firstSnapshotMs ?? FIRST_SNAPSHOT_MS);
    this.bound.unref();
    this.stream = ndjsonStream({
      address: o.address,
      path: `${CA_PATHS.policy}?workload=${encodeURIComponent(workloadParam(o.self))}`,
      caBundle: o.caBundle,
      serverIdentity: o.serverIdentity,
      ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
      ...(o.backoff !== undefined ? { backoff: o.backoff } : {}),
      onMessage: (msg) => this.message(msg),
      onLost: (err, retryMs) => {
        this.snapshots = 0;
        // An injector without the policy route has no policy to give: do not hold readiness.
        if (err instanceof StreamStatusError && err.status === 404) o.holder.markReady();
        o.log.warn(
          {
            event: 'policy_stream_lost',
            retryMs,
            err: err.message,
            keeping: o.holder.current?.version ?? null,
          },
          'policy stream lost: keeping the last good policy, reconnecting',
        );
      },
    });
  }

  private message(msg: Record<string, unknown>): void {
    if (!('document' in msg)) return; // heartbeat
    const doc = msg.document;
    if (doc === null) this.o.holder.clear(this.from);
    else if (typeof doc === 'string') this.o.holder.update(doc, this.from);
    else {
      this.o.log.warn(
        { event: 'policy_stream_invalid', type: typeof doc },
        'policy stream line without a document text: ignored',
      );
      return;
    }
    if (this.snapshots++ === 0 && !this.o.holder.ready) {
      this.o.log.info(
        { event: 'policy_snapshot', version: this.o.holder.current?.version ?? null },
        'policy received',
      );
      this.o.holder.markReady();
    }
  }

  close(): void {
    clearTimeout(this.bound);
    this.stream.close();
  }
}
