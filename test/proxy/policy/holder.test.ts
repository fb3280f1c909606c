/**
 * PolicyHolder: a document becomes the compiled policy in force, swapped whole; an invalid one
 * keeps the last good policy, is counted and logged with every problem, and shows in status().
 */
import { describe, expect, it } from 'vitest';
import { PolicyInvalidError } from '../../../proxy/src/errors.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { policyVersion } from '../../../proxy/src/policy/document.js';
import { PolicyHolder } from '../../../proxy/src/policy/holder.js';
import { PolicyMetrics } from '../../../proxy/src/policy/metrics.js';
import { INVALID, capturingLogger, denyAll, denyPaths } from './distribution-helpers.js';

function holder(self = { namespace: 'shop', workload: 'orders' }) {
  const registry = new Registry();
  const metrics = PolicyMetrics.of(registry);
  const { log, lines } = capturingLogger();
  const h = new PolicyHolder({ self, metrics, log, source: 'test' });
  const count = (result: string): number => metrics.updates.child(result).value;
  return { h, lines, count };
}

describe('PolicyHolder', () => {
  it('loads a document: compiled for this workload, versioned by its text, counted, ready', () => {
    const { h, count } = holder();
    const text = denyPaths(8080, ['/admin']);
    expect(h.ready).toBe(false);
    h.load(text, 'file x');
    expect(h.current?.version).toBe(policyVersion(text));
    expect(h.current?.policies).toEqual(['guard']);
    expect(h.current?.inbound(8080)).toBeDefined();
    expect(h.current?.inbound(9090)).toBeUndefined();
    expect(h.ready).toBe(true);
    expect(count('accepted')).toBe(1);
    expect(h.status()).toMatchObject({ version: policyVersion(text), policies: ['guard'], source: 'test' });
  });

  it('an invalid document at load throws every problem and installs nothing', () => {
    const { h, count } = holder();
    let err: unknown;
    try {
      h.load(INVALID, 'file x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyInvalidError);
    const errors = (err as PolicyInvalidError).errors.join('\n');
    expect(errors).toContain('10.0.0.0/33');
    expect(errors).toContain('rateLimits');
    expect(h.current).toBeUndefined();
    expect(count('accepted')).toBe(0);
  });

  it('an invalid update keeps the last good policy (the same object), says why, and counts once', () => {
    const { h, lines, count } = holder();
    h.load(denyPaths(8080, ['/admin']), 'file x');
    const good = h.current;
    expect(h.update(INVALID, 'file x')).toBe(false);
    expect(h.current).toBe(good);
    const warn = lines.find((l) => l.event === 'policy_rejected');
    expect(warn?.level).toBe('warn');
    expect(warn?.keeping).toBe(good?.version);
    expect((warn?.errors as string[]).join('\n')).toContain('10.0.0.0/33');
    expect(h.status().lastError?.errors.join('\n')).toContain('rateLimits');
    expect(h.status().version).toBe(good?.version);
    // The same bad text again (a file re-read) is not a new rejection.
    expect(h.update(INVALID, 'file x')).toBe(false);
    expect(count('rejected')).toBe(1);
    expect(lines.filter((l) => l.event === 'policy_rejected')).toHaveLength(1);
  });

  it('a valid update swaps the policy whole and clears the last error; the same text is a no-op', () => {
    const { h, lines, count } = holder();
    h.load(denyPaths(8080, ['/admin']), 'file x');
    h.update(INVALID, 'file x');
    const next = denyAll(8080);
    expect(h.update(next, 'file x')).toBe(true);
    expect(h.current?.version).toBe(policyVersion(next));
    expect(h.current?.policies).toEqual(['lockdown']);
    expect(h.status().lastError).toBeNull();
    expect(h.update(next, 'file x')).toBe(true);
    expect(count('accepted')).toBe(2);
    expect(lines.filter((l) => l.event === 'policy_updated')).toHaveLength(2);
  });

  it('selectors are applied for this workload: a policy for another namespace selects nothing here', () => {
    const { h } = holder({ namespace: 'billing', workload: 'ledger' });
    h.load(
      `apiVersion: remora.dev/v1
kind: PolicySet
policies:
  - name: shop-only
    selector: { namespace: shop }
    inbound: [{ authorization: { default: deny } }]
`,
      'file x',
    );
    expect(h.current?.policies).toEqual([]);
    expect(h.current?.inbound(8080)).toBeUndefined();
  });

  it('clear() drops the policy (the control plane serves none); whenReady waits for markReady', async () => {
    const { h, lines } = holder();
    let ready = false;
    const waiting = h.whenReady().then(() => (ready = true));
    await Promise.resolve();
    expect(ready).toBe(false);
    h.update(denyAll(8080), 'stream');
    h.markReady();
    await waiting;
    expect(ready).toBe(true);
    h.clear('stream');
    expect(h.current).toBeUndefined();
    expect(h.status()).toMatchObject({ version: null, policies: [], lastError: null, ready: true });
    expect(lines.some((l) => l.event === 'policy_cleared')).toBe(true);
  });
});
