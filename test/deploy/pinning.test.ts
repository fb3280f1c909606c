/**
 * Pinning the images by digest as docs/deploy.md says ("Pinning the images by digest"): an overlay
 * of deploy/base with kustomize `images:` for the injector's Deployment, and the proxy's image,
 * a string inside the mesh ConfigMap, pinned by replacing mesh.yaml in the same overlay. The
 * built output is what the injector then injects.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { parseMeshConfig } from '../../injector/src/config/mesh.js';
import { evaluate } from '../../injector/src/inject/evaluate.js';
import { INJECTOR } from '../../proxy/src/contract.js';
import { missingPrerequisite } from '../helpers/env.js';
import { one, parseYamlDocs } from './k8s.js';
import type { K8sObject } from './k8s.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const skip = missingPrerequisite({ tools: ['kubectl'] });
const INJECTOR_DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const PROXY_DIGEST = `sha256:${'fedcba9876543210'.repeat(4)}`;

describe.skipIf(skip !== undefined)(`image digests pinned in a kustomize overlay ${skip ?? ''}`, () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const build = (dir: string): K8sObject[] =>
    parseYamlDocs(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' }), dir).map(
      (d) => d.value as K8sObject,
    );

  it('images: pins the injector Deployment by digest, and a replaced mesh.yaml pins the injected proxy', () => {
    const base = build(join(ROOT, 'deploy/base'));
    const meshText = one<IConfigMap>(base, 'ConfigMap', INJECTOR.meshConfigMap).data?.[
      INJECTOR.meshConfigKey
    ];
    expect(meshText).toMatch(/^proxyImage: ghcr\.io\/remora-mesh\/remora-proxy:\S+$/m);
    const pinnedProxy = `ghcr.io/remora-mesh/remora-proxy:0.1.0@${PROXY_DIGEST}`;
    const pinnedMesh = (meshText ?? '').replace(/^proxyImage: .*$/m, `proxyImage: ${pinnedProxy}`);

    const dir = mkdtempSync(join(tmpdir(), 'remora-pin-'));
    dirs.push(dir);
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        // kustomize refuses an absolute path to a base.
        resources: [relative(dir, join(ROOT, 'deploy/base'))],
        images: [{ name: 'ghcr.io/remora-mesh/remora-injector', digest: INJECTOR_DIGEST }],
        patches: [
          {
            patch: stringify({
              apiVersion: 'v1',
              kind: 'ConfigMap',
              metadata: { name: INJECTOR.meshConfigMap, namespace: INJECTOR.namespace },
              data: { [INJECTOR.meshConfigKey]: pinnedMesh },
            }),
          },
        ],
      }),
    );
    const out = build(dir);
    const deployment = one<IDeployment>(out, 'Deployment', INJECTOR.serviceName);
    expect(deployment.spec?.template.spec?.containers.map((c) => c.image)).toEqual([
      `ghcr.io/remora-mesh/remora-injector@${INJECTOR_DIGEST}`,
    ]);

    const mesh = parseMeshConfig(
      one<IConfigMap>(out, 'ConfigMap', INJECTOR.meshConfigMap).data?.[INJECTOR.meshConfigKey] ?? '',
    );
    expect(mesh.proxyImage).toBe(pinnedProxy);
    const outcome = evaluate(
      { metadata: { name: 'web' }, spec: { containers: [{ name: 'web', image: 'nginx' }] } },
      { name: 'shop', labels: { 'remora.dev/inject': 'enabled' } },
      mesh,
    );
    expect(outcome.result).toBe('injected');
    const images = JSON.stringify(outcome.result === 'injected' ? outcome.patch : []).match(
      /"image":"[^"]+remora-proxy[^"]*"/g,
    );
    // remora-init and remora-proxy, both the pinned image.
    expect(images).toEqual([`"image":"${pinnedProxy}"`, `"image":"${pinnedProxy}"`]);
    // Everything else in the mesh config is the base's.
    expect({ ...mesh, proxyImage: '' }).toEqual({ ...parseMeshConfig(meshText ?? ''), proxyImage: '' });
  });
});
