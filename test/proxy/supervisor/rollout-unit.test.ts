/**
 * The rollout controller's decisions with the injector and the supervisor faked (the real ones:
 * rollout.test.ts and test/e2e/engine-rollout.test.ts): without a lease nothing is fetched or
 * run; a refused bundle is never run and not retried while named; naming it again retries.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { createSupervisorLogger } from '../../../proxy/src/supervisor/log.js';
import { BundleDigestError } from '../../../proxy/src/supervisor/errors.js';
import { Rollout } from '../../../proxy/src/supervisor/rollout.js';
import type { LeaseAnswer } from '../../../proxy/src/supervisor/control-plane.js';
import type { UpgradeResult } from '../../../proxy/src/supervisor/supervisor.js';
import { waitFor } from './helpers.js';

const D2 = `sha256:${'2'.repeat(64)}`;

function rig(lease: (body: Record<string, unknown>) => LeaseAnswer) {
  const calls: string[] = [];
  let running = 'builtin';
  let ensureFails: Error | undefined;
  const r = new Rollout({
    running: () => running,
    upgrade: (req) => {
      calls.push(`upgrade ${req.version ?? ''}`);
      running = req.version ?? running;
      return Promise.resolve({ ok: true } as UpgradeResult);
    },
    lease: (body) => {
      calls.push(`${String(body.op)} ${String(body.op === 'report' ? body.state : body.version)}`);
      return Promise.resolve(lease(body));
    },
    ensure: (version) => {
      calls.push(`ensure ${version}`);
      return ensureFails
        ? Promise.reject(ensureFails)
        : Promise.resolve({ dir: '/x', fetched: true, bytes: 1 });
    },
    log: createSupervisorLogger('silent', {}),
    metrics: new Registry(),
    retry: { baseMs: 10, maxMs: 20 },
  });
  return { r, calls, failEnsure: (e: Error) => (ensureFails = e) };
}

describe('Rollout (control plane and supervisor faked)', () => {
  it('without a lease nothing is fetched or run; once granted: fetch, upgrade, release', async () => {
    let free = false;
    const { r, calls } = rig((b) =>
      b.op === 'acquire'
        ? free
          ? { granted: true }
          : { granted: false, retryAfterSeconds: 0.02 }
        : { granted: true },
    );
    r.onDesired({ version: 'v2', digest: D2, size: 1 });
    await waitFor('waiting', () => Promise.resolve(r.status().state === 'waiting-lease'));
    await new Promise((res) => setTimeout(res, 100));
    expect(calls.filter((c) => c.startsWith('ensure') || c.startsWith('upgrade'))).toEqual([]);
    free = true;
    await waitFor('current', () =>
      Promise.resolve(r.status().state === 'current' && r.status().running === 'v2'),
    );
    const after = calls.slice(calls.lastIndexOf('acquire v2'));
    expect(after.filter((c) => !c.startsWith('report'))).toEqual([
      'acquire v2',
      'ensure v2',
      'upgrade v2',
      'release v2',
    ]);
    expect(calls).toContain('report waiting-lease');
    r.close();
  });

  it('a refused bundle never runs and is not retried while named; naming it again retries', async () => {
    const { r, calls, failEnsure } = rig(() => ({ granted: true }));
    failEnsure(new BundleDigestError(D2, `sha256:${'3'.repeat(64)}`));
    r.onDesired({ version: 'v2', digest: D2, size: 1 });
    await waitFor('refused', () => Promise.resolve(r.status().state === 'refused'));
    await new Promise((res) => setTimeout(res, 100));
    expect(calls.filter((c) => c === 'ensure v2')).toHaveLength(1);
    expect(calls).not.toContain('upgrade v2');
    expect(calls).toContain('release v2');
    r.onDesired({ version: 'builtin', digest: null, size: null });
    r.onDesired({ version: 'v2', digest: D2, size: 1 });
    await waitFor('tried again', () => Promise.resolve(calls.filter((c) => c === 'ensure v2').length === 2));
    r.close();
  });
});
