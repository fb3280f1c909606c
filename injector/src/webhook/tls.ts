/**
 * The webhook's serving certificate: from a mounted secret (`tls.crt`, `tls.key`) when present,
 * otherwise a self-generated CA and serving certificate for the Service's DNS names. The CA
 * bundle then has to reach the API server (k8s/cabundle.ts). Renewal happens at two thirds of a
 * certificate's lifetime; a new CA is published before any certificate it signed is served.
 */
import type { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issue } from '../pki/ca.js';
import type { Ca } from '../pki/ca.js';
import type { TlsMaterial } from './server.js';

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    `${service}.${namespace}`,
    service,
  ];
}

/** Reads `tls.crt` and `tls.key` from dir, or undefined when either is absent. */
export function loadMountedTls(dir: string): (TlsMaterial & { cert: string; key: string }) | undefined {
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  if (!existsSync(cert) || !existsSync(key)) return undefined;
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

function pastTwoThirds(cert: X509Certificate, now: Date): boolean {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return now.getTime() >= from + ((to - from) * 2) / 3;
}

export interface SelfSignedOptions {
  dnsNames: readonly string[];
  caValidityDays?: number;
  certValidityDays?: number;
}

export class SelfSignedTls {
  private ca: Ca;
  private served: TlsMaterial & { x509: X509Certificate };
  private readonly opts: Required<SelfSignedOptions>;

  constructor(opts: SelfSignedOptions, now = new Date()) {
    this.opts = { caValidityDays: 365, certValidityDays: 30, ...opts };
    this.ca = this.newCa(now);
    this.served = this.newLeaf(now);
  }

  private newCa(now: Date): Ca {
    return createCa(
      { organization: 'remora', commonName: `remora-injector CA ${now.toISOString()}` },
      this.opts.caValidityDays,
      now,
    );
  }

  private newLeaf(now: Date): TlsMaterial & { x509: X509Certificate } {
    const leaf = issue(
      this.ca,
      {
        subject: { commonName: this.opts.dnsNames[0] ?? 'remora-injector' },
        validityDays: this.opts.certValidityDays,
        dnsNames: this.opts.dnsNames,
        extKeyUsage: ['serverAuth'],
      },
      now,
    );
    return { key: leaf.keyPem, cert: `${leaf.certPem}${this.ca.certPem}`, x509: leaf.cert };
  }

  /** The CA the API server must trust. */
  caPem(): string {
    return this.ca.certPem;
  }

  material(): TlsMaterial {
    return { key: this.served.key, cert: this.served.cert };
  }

  /**
   * Renews what is due. A new CA comes first (`caRenewed`); the caller publishes it, then calls
   * `renewLeaf` so no client sees a certificate from a CA it does not trust yet.
   */
  renewCaIfDue(now = new Date()): boolean {
    if (!pastTwoThirds(this.ca.cert, now)) return false;
    this.ca = this.newCa(now);
    return true;
  }

  /** Issues a new serving certificate when it is due or its CA changed; returns true if it did. */
  renewLeafIfDue(now = new Date()): boolean {
    if (!pastTwoThirds(this.served.x509, now) && this.served.x509.checkIssued(this.ca.cert)) return false;
    this.served = this.newLeaf(now);
    return true;
  }
}
