/**
 * Upgrades driven by the control plane (DESIGN §5, docs/upgrades.md): the injector announces
 * the engine version the mesh config names; when it is not what runs here, the supervisor
 *   1. asks the injector for an upgrade lease (at most `rollout.maxConcurrent` pods at a time),
 *      and waits and asks again when none is free;
 *   2. fetches the bundle into REMORA_ENGINE_BUNDLE_ROOT and checks its digest before anything
 *      runs (bundle-fetch.ts); a mismatch or a bad archive is refused, logged, counted;
 *   3. upgrades in place with the admin API's own machinery (Supervisor.upgrade): the old engine
 *      serves until the new one is ready; one that is not ready within
 *      REMORA_ENGINE_READY_SECONDS is killed and the old one keeps serving (the rollback);
 *   4. releases the lease with the outcome, and reports it (log event, metric, /config).
 * A digest that failed (refused or rolled back) is not tried again while the mesh config names
 * it: a broken build costs each pod one attempt, not a loop (naming it again later retries).
 */
import { BUILTIN_VERSION } from './supervisor.js';
import type { UpgradeRequest, UpgradeResult } from './supervisor.js';
import type { Counter, Registry } from '../metrics/registry.js';
import { BundleDigestError, BundleError, UpgradeBusyError } from './errors.js';
import type { DesiredEngine, LeaseAnswer } from './control-plane.js';
import type { Ensured } from './bundle-fetch.js';
import type { Logger } from './log.js';

export const ROLLOUT_METRICS = Object.freeze({
  /** outcome: succeeded | rolled_back | refused | failed */
  upgrades: 'remora_engine_rollout_upgrades_total',
});

export type RolloutState =
  'idle' | 'current' | 'waiting-lease' | 'fetching' | 'upgrading' | 'rolled-back' | 'refused' | 'retrying';

export interface RolloutDeps {
  readonly running: () => string;
  readonly upgrade: (req: UpgradeRequest) => Promise<UpgradeResult>;
  readonly lease: (body: Readonly<Record<string, unknown>>) => Promise<LeaseAnswer>;
  readonly ensure: (version: string, digest: string) => Promise<Ensured>;
  readonly log: Logger;
  readonly metrics: Registry;
  /** delays between attempts (lease busy, network errors) */
  readonly retry?: { readonly baseMs: number; readonly maxMs: number };
  /** called by close() (the control-plane client's stream and certificate) */
  readonly onClose?: () => void;
}

interface Outcome {
  readonly version: string;
  readonly digest: string | null;
  readonly outcome: 'succeeded' | 'rolled_back' | 'refused' | 'failed';
  readonly reason?: string;
  readonly at: string;
  readonly durationMs: number;
}

const DEFAULT_RETRY = Object.freeze({ baseMs: 1000, maxMs: 30_000 });

export class Rollout {
  private desired: DesiredEngine | undefined;
  private state: RolloutState = 'idle';
  private busy = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private readonly failed = new Map<string, Outcome>();
  private last: Outcome | undefined;
  private detail: string | undefined;
  private readonly counter: Counter;
  private reporting: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: RolloutDeps) {
    this.counter = d.metrics.counter(
      ROLLOUT_METRICS.upgrades,
      'Engine upgrades the control plane asked for, by outcome (succeeded, rolled_back, refused, failed).',
      ['outcome'],
    );
    for (const o of ['succeeded', 'rolled_back', 'refused', 'failed']) this.counter.child(o).inc(0);
  }

  /** A new announcement from the injector's stream. */
  onDesired(next: DesiredEngine): void {
    const same =
      this.desired !== undefined &&
      this.desired.version === next.version &&
      this.desired.digest === next.digest &&
      this.desired.error === next.error;
    this.desired = next;
    if (same) return;
    this.d.log.info(
      { event: 'engine_desired', version: next.version, digest: next.digest, error: next.error },
      `the control plane names engine ${next.version}`,
    );
    this.failures = 0;
    // Named again after another version: a new attempt (a build that was only slow to start
    // once can be retried by naming something else and then it again).
    this.failed.clear();
    this.kick();
  }

  status(): Record<string, unknown> {
    return {
      desired: this.desired ?? null,
      state: this.state,
      detail: this.detail ?? null,
      running: this.d.running(),
      last: this.last ?? null,
      failed: [...this.failed.values()],
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.d.onClose?.();
  }

  private kick(): void {
    if (this.closed) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.step().then(
      () => this.settle(),
      (err: unknown) => {
        this.d.log.error({ event: 'engine_rollout_error', err }, 'engine rollout step failed');
        this.settle();
      },
    );
  }

  private settle(): void {
    this.busy = false;
    if (this.again) {
      this.again = false;
      this.kick();
    }
  }

  private later(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, ms);
    this.timer.unref();
  }

  private backoffMs(): number {
    const r = this.d.retry ?? DEFAULT_RETRY;
    this.failures += 1;
    const cap = Math.min(r.maxMs, r.baseMs * 2 ** Math.min(this.failures - 1, 16));
    return cap / 2 + (Math.random() * cap) / 2;
  }

  /** Sets the state; a change is reported to the injector (in order, best effort). */
  private set(state: RolloutState, detail?: string): void {
    const changed = state !== this.state;
    this.state = state;
    this.detail = detail;
    const d = this.desired;
    if (!changed || d === undefined || state === 'idle') return;
    const body = {
      op: 'report',
      version: this.d.running(),
      desired: d.version,
      state,
      ...(detail !== undefined ? { detail: detail.slice(0, 500) } : {}),
    };
    // best effort: the state is in /config and the log either way
    this.reporting = this.reporting.then(() => this.d.lease(body)).catch(() => undefined);
  }

  private async step(): Promise<void> {
    const d = this.desired;
    if (d === undefined) return;
    if (d.error !== undefined) {
      this.set('idle', `the injector cannot serve ${d.version}: ${d.error}`);
      return;
    }
    if (this.d.running() === d.version) {
      if (this.state !== 'current') {
        this.set('current');
      }
      return;
    }
    const key = d.digest ?? BUILTIN_VERSION;
    const failed = this.failed.get(key);
    if (failed !== undefined) {
      this.set(failed.outcome === 'refused' ? 'refused' : 'rolled-back', failed.reason);
      return;
    }
    // 1. the lease
    let lease: LeaseAnswer;
    try {
      lease = await this.d.lease({ op: 'acquire', version: d.version, digest: d.digest });
    } catch (err) {
      const ms = this.backoffMs();
      this.set('retrying', `lease: ${(err as Error).message}`);
      this.d.log.warn(
        { event: 'engine_lease_failed', version: d.version, retryMs: Math.round(ms), err },
        'cannot ask for an upgrade lease',
      );
      this.later(ms);
      return;
    }
    if (!lease.granted) {
      const ms = lease.retryAfterSeconds !== undefined ? lease.retryAfterSeconds * 1000 : this.backoffMs();
      this.set(
        'waiting-lease',
        lease.error ?? `${lease.holders ?? '?'} of ${lease.maxConcurrent ?? '?'} pods upgrading`,
      );
      // Spread the retries: a fleet waiting for the same lease must not ask in lock-step.
      this.later(ms / 2 + (Math.random() * ms) / 2);
      return;
    }
    this.failures = 0;
    const started = Date.now();
    const done = async (o: Omit<Outcome, 'version' | 'digest' | 'at' | 'durationMs'>): Promise<void> => {
      const out: Outcome = {
        version: d.version,
        digest: d.digest,
        ...o,
        at: new Date().toISOString(),
        durationMs: Date.now() - started,
      };
      this.last = out;
      this.counter.child(out.outcome).inc();
      if (out.outcome === 'refused' || out.outcome === 'rolled_back') this.failed.set(key, out);
      try {
        await this.d.lease({ op: 'release', version: d.version, digest: d.digest, outcome: out.outcome });
      } catch (err) {
        // the lease expires by itself at the injector
        this.d.log.warn({ event: 'engine_lease_release_failed', err }, 'cannot release the upgrade lease');
      }
    };
    // 2. the bundle, digest checked before anything runs
    if (d.digest !== null) {
      this.set('fetching');
      try {
        const got = await this.d.ensure(d.version, d.digest);
        this.d.log.info(
          {
            event: 'engine_bundle_ready',
            version: d.version,
            digest: d.digest,
            fetched: got.fetched,
            bytes: got.bytes,
          },
          'engine bundle verified',
        );
      } catch (err) {
        if (err instanceof BundleDigestError || err instanceof BundleError) {
          this.set('refused', err.message);
          this.d.log.warn(
            {
              event:
                err instanceof BundleDigestError ? 'engine_bundle_digest_mismatch' : 'engine_bundle_refused',
              version: d.version,
              digest: d.digest,
              reason: err.message,
            },
            'engine bundle refused: nothing runs from it',
          );
          await done({ outcome: 'refused', reason: err.message });
          return;
        }
        const ms = this.backoffMs();
        this.set('retrying', `fetch: ${(err as Error).message}`);
        this.d.log.warn(
          { event: 'engine_bundle_fetch_failed', version: d.version, retryMs: Math.round(ms), err },
          'cannot fetch the engine bundle',
        );
        await done({ outcome: 'failed', reason: (err as Error).message });
        this.later(ms);
        return;
      }
    }
    // 3. in place, with the admin API's machinery
    this.set('upgrading');
    let r: UpgradeResult;
    try {
      r = await this.d.upgrade({ version: d.version });
    } catch (err) {
      const ms = this.backoffMs();
      this.set('retrying', (err as Error).message);
      await done({ outcome: 'failed', reason: (err as Error).message });
      if (!(err instanceof UpgradeBusyError))
        this.d.log.warn({ event: 'engine_rollout_upgrade_failed', err }, 'control-plane upgrade failed');
      this.later(ms);
      return;
    }
    if (r.ok) {
      this.set('current');
      this.d.log.info(
        {
          event: 'engine_rollout_succeeded',
          version: d.version,
          digest: d.digest,
          durationMs: Date.now() - started,
        },
        `engine upgraded to ${d.version}`,
      );
      await done({ outcome: 'succeeded' });
    } else {
      this.set('rolled-back', r.reason);
      this.d.log.warn(
        {
          event: 'engine_rolled_back',
          version: d.version,
          digest: d.digest,
          running: r.running,
          reason: r.reason,
        },
        `engine ${d.version} did not become ready: rolled back, ${r.running?.version ?? 'nothing'} keeps serving`,
      );
      await done({ outcome: 'rolled_back', ...(r.reason !== undefined ? { reason: r.reason } : {}) });
    }
    // the desired version may have changed meanwhile: look again
    if (this.desired !== d) this.again = true;
  }
}
