/**
 * The injector on its own ServiceAccount's token with exactly the RBAC of deploy/base/rbac.yaml,
 * against a real kube-apiserver (RBAC authorizer): with every rule, nothing it does is forbidden;
 * with any one rule taken out, the API server refuses the call that rule exists for (the
 * injector's log names it). So every rule is needed, and the injector needs nothing else.
 */
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  injectorKubeconfig,
  missingControlPlane,
  ROOT,
  startControlPlane,
  startInjectorProcess,
} from './harness.js';
import type { ControlPlane } from './harness.js';

const skip = missingControlPlane();
const SA = 'system:serviceaccount:remora-system:remora-injector';
const uniq = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const FRESH = `fresh-${uniq}`;
const HAS_BUNDLE = `bundled-${uniq}`;

interface Rule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}
interface RoleDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules: Rule[];
}

let cp: ControlPlane;
let kubeconfig: string;
let roles: RoleDoc[];

/** One run of the injector: start, make it do each API call it has, collect its output. */
async function exercise(): Promise<{ out: string; exited: boolean }> {
  // Each run starts from the same state: the identity root and FRESH's trust bundle absent (so
  // they are created), HAS_BUNDLE's present but stale (so it is read and replaced).
  await cp.kubectl(['-n', 'remora-system', 'delete', 'secret', 'remora-identity-ca', '--ignore-not-found']);
  await cp.kubectl(['-n', FRESH, 'delete', 'configmap', 'remora-trust-bundle', '--ignore-not-found']);
  await cp.kubectlOk(['-n', HAS_BUNDLE, 'apply', '--server-side', '--force-conflicts', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'remora-trust-bundle' },
      data: { 'ca.crt': 'stale' },
    }),
  });
  let inj;
  try {
    inj = await startInjectorProcess(kubeconfig);
  } catch (err) {
    return { out: String(err), exited: true };
  }
  try {
    // The CA's TokenReview: a proxy's token, audience remora.
    const token = (
      await cp.kubectlOk(['-n', FRESH, 'create', 'token', 'default', '--audience', 'remora'])
    ).trim();
    await fetchCert(inj.caPort, token).catch(() => undefined);
    // A proxy's upgrade lease and engine report: Lease objects, and remora-engine-status (created
    // once, then replaced).
    await reportEngine(inj.caPort, token).catch(() => undefined);
    // Informers and watches report on their own schedule: give them a moment.
    await new Promise((r) => setTimeout(r, 3000));
    return { out: inj.logs(), exited: false };
  } finally {
    await inj.stop();
  }
}

/** A certificate for `token`, then one engine report with it, as a proxy's supervisor makes. */
async function reportEngine(port: number, token: string): Promise<number> {
  const { request } = await import('node:https');
  const { generateKeyPairSync } = await import('node:crypto');
  const { createCsr } = await import('../../proxy/src/identity/csr.js');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const post = (path: string, body: string, cert?: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path,
          rejectUnauthorized: false,
          agent: false,
          ...(cert !== undefined ? { cert, key: privateKey.export({ type: 'pkcs8', format: 'pem' }) } : {}),
        },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const issued = await post(
    '/v1/certificates',
    JSON.stringify({ csr: createCsr(privateKey, publicKey).pem, token }),
  );
  const { certificate } = JSON.parse(issued.body) as { certificate: string };
  const lease = (op: string): Promise<{ status: number }> =>
    post(
      '/v1/engine-lease',
      JSON.stringify({
        op,
        version: 'builtin',
        desired: 'builtin',
        state: 'current',
        pod: 'p',
        namespace: FRESH,
      }),
      certificate,
    );
  // an upgrade lease (a Lease object: list, create, then delete) and a report
  await lease('acquire');
  await lease('release');
  return (await lease('report')).status;
}

async function fetchCert(port: number, token: string): Promise<number> {
  const { request } = await import('node:https');
  const { generateKeyPairSync } = await import('node:crypto');
  const { createCsr } = await import('../../proxy/src/identity/csr.js');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const body = JSON.stringify({ csr: createCsr(privateKey, publicKey).pem, token });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/certificates',
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function applyRoles(docs: RoleDoc[]): Promise<void> {
  await cp.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }),
  });
}

/** Waits until the RBAC authorizer's cache answers `can-i` as `want` for the injector. */
async function waitCanI(rule: Rule, ns: string | undefined, want: boolean): Promise<void> {
  const verb = rule.verbs[0] as string;
  const group = rule.apiGroups[0] ?? '';
  const res = `${rule.resources[0]}${group ? `.${group}` : ''}${rule.resourceNames ? `/${rule.resourceNames[0]}` : ''}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await cp.kubectl(['auth', 'can-i', verb, res, '--as', SA, ...(ns ? ['-n', ns] : [])]);
    if ((r.stdout.trim() === 'yes') === want) return;
    if (Date.now() > deadline) throw new Error(`can-i ${verb} ${res}: still ${r.stdout.trim()}`);
    await new Promise((x) => setTimeout(x, 200));
  }
}

describe.skipIf(skip !== undefined)(
  `injector RBAC against kube-apiserver${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    beforeAll(async () => {
      cp = await startControlPlane();
      await cp.kubectlOk(['apply', '--server-side', '-k', join(ROOT, 'deploy/base')]);
      const built = await cp.kubectlOk(['kustomize', join(ROOT, 'deploy/base')]);
      roles = parseAllDocuments(built)
        .map((d) => d.toJSON() as RoleDoc)
        .filter((d) => d && (d.kind === 'Role' || d.kind === 'ClusterRole'));
      kubeconfig = await injectorKubeconfig(cp);
      await createNamespace(cp, FRESH);
      await createNamespace(cp, HAS_BUNDLE);
    }, 240_000);

    afterAll(async () => {
      await cp?.stop();
    }, 60_000);

    it('with exactly deploy/base RBAC nothing the injector does is forbidden, and it works', async () => {
      const { out, exited } = await exercise();
      expect(exited).toBe(false);
      expect(out).not.toMatch(/forbidden/i);
      expect(out).toContain('"event":"ca_bundle_updated"');
      const cm = await cp.kubectl(['-n', FRESH, 'get', 'configmap', 'remora-trust-bundle']);
      expect(cm.code).toBe(0);
      expect(roles.map((r) => r.kind).sort()).toEqual(['ClusterRole', 'Role']);
    }, 90_000);

    it('every rule of deploy/base/rbac.yaml is needed: taken out, the call it grants is refused', async () => {
      const results: string[] = [];
      for (const role of roles) {
        for (let i = 0; i < role.rules.length; i++) {
          const rule = role.rules[i] as Rule;
          const without = { ...role, rules: role.rules.filter((_, j) => j !== i) };
          await applyRoles([without]);
          await waitCanI(rule, role.metadata.namespace ?? FRESH, false);
          const { out } = await exercise();
          await applyRoles([role]);
          await waitCanI(rule, role.metadata.namespace ?? FRESH, true);
          // The API server's refusal names the verb and resource it refused.
          // The API server's refusal names the verb and resource (quoted, and escaped once per
          // layer of JSON it is logged through).
          const refused = rule.verbs.some((v) =>
            rule.resources.some((r) => new RegExp(`cannot ${v} resource \\\\*"${r}\\\\*"`).test(out)),
          );
          results.push(
            `${role.kind} rule ${i} (${rule.verbs.join(',')} ${rule.resources.join(',')}${rule.resourceNames ? ` ${rule.resourceNames.join(',')}` : ''}): ${refused ? 'refused when taken out' : 'NOT NEEDED'}`,
          );
        }
      }
      expect(results.filter((r) => r.endsWith('NOT NEEDED'))).toEqual([]);
      expect(results.length).toBe(roles.reduce((n, r) => n + r.rules.length, 0));
    }, 600_000);
  },
);
