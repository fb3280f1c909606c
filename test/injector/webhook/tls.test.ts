import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SelfSignedTls, loadMountedTls, serviceDnsNames } from '../../../injector/src/webhook/tls.js';

const DAY = 86_400_000;

describe('self-generated serving TLS', () => {
  it('serves the Service DNS names, chained to its CA', () => {
    const names = serviceDnsNames('remora-injector', 'remora-system');
    expect(names).toContain('remora-injector.remora-system.svc');
    expect(names).toContain('remora-injector.remora-system.svc.cluster.local');
    const tls = new SelfSignedTls({ dnsNames: names });
    const leaf = new X509Certificate(tls.material().cert as string);
    expect(leaf.checkHost('remora-injector.remora-system.svc')).toBeDefined();
    expect(leaf.checkHost('remora-injector.remora-system.svc.cluster.local')).toBeDefined();
    expect(leaf.checkIssued(new X509Certificate(tls.caPem()))).toBe(true);
  });

  it('renews the leaf at two thirds of its life, and the CA (then the leaf) at two thirds of the CA life', () => {
    const t0 = new Date();
    const tls = new SelfSignedTls({ dnsNames: ['x.svc'], caValidityDays: 90, certValidityDays: 30 }, t0);
    const firstCa = tls.caPem();
    const firstLeaf = tls.material().cert;
    expect(tls.renewCaIfDue(new Date(t0.getTime() + 10 * DAY))).toBe(false);
    expect(tls.renewLeafIfDue(new Date(t0.getTime() + 10 * DAY))).toBe(false);
    expect(tls.renewLeafIfDue(new Date(t0.getTime() + 21 * DAY))).toBe(true);
    expect(tls.material().cert).not.toBe(firstLeaf);
    expect(tls.caPem()).toBe(firstCa);
    expect(tls.renewCaIfDue(new Date(t0.getTime() + 61 * DAY))).toBe(true);
    expect(tls.caPem()).not.toBe(firstCa);
    // The leaf from the old CA is replaced as soon as asked, whatever its age.
    const t = new Date(t0.getTime() + 61 * DAY);
    expect(tls.renewLeafIfDue(t)).toBe(true);
    expect(
      new X509Certificate(tls.material().cert as string).checkIssued(new X509Certificate(tls.caPem())),
    ).toBe(true);
  });
});

describe('mounted TLS', () => {
  it('reads tls.crt and tls.key when both exist, else nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-tls-'));
    try {
      expect(loadMountedTls(dir)).toBeUndefined();
      writeFileSync(join(dir, 'tls.crt'), 'CERT');
      expect(loadMountedTls(dir)).toBeUndefined();
      writeFileSync(join(dir, 'tls.key'), 'KEY');
      expect(loadMountedTls(dir)).toEqual({ cert: 'CERT', key: 'KEY' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
