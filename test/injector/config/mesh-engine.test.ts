// The mesh config's engine field (docs/upgrades.md): the version proxies run, an optional
// pinned digest, and the rollout bound.
import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../../../injector/src/config/mesh.js';
import { MeshConfigError } from '../../../injector/src/errors.js';

function errorsOf(text: string): readonly string[] {
  try {
    parseMeshConfig(text);
  } catch (err) {
    if (err instanceof MeshConfigError) return err.errors;
    throw err;
  }
  return [];
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('mesh config engine', () => {
  it('names a version, pins a digest and bounds the rollout; unset parts keep their defaults', () => {
    expect(parseMeshConfig('engine: {version: v2}').engine).toEqual({
      version: 'v2',
      rollout: { maxConcurrent: 1, leaseSeconds: 120 },
    });
    expect(
      parseMeshConfig(`engine:\n  version: 0.2.0-rc.1\n  digest: ${DIGEST}\n  rollout: {maxConcurrent: 3}\n`)
        .engine,
    ).toEqual({ version: '0.2.0-rc.1', digest: DIGEST, rollout: { maxConcurrent: 3, leaseSeconds: 120 } });
    expect(parseMeshConfig('engine:').engine.version).toBe('builtin');
  });

  it('bad values are refused, each named, together', () => {
    expect(
      errorsOf(
        'engine:\n  version: ../etc\n  digest: sha256:XYZ\n  rollout: {maxConcurrent: 0, leaseSeconds: 1.5, burst: 2}\n  colour: red\n',
      ),
    ).toEqual([
      // The schema module's wording and order (issue 16: one schema style for the mesh config):
      // unknown fields first, then each field's problem in declaration order.
      'engine.colour: unknown field (expected one of: version, digest, rollout)',
      'engine.version: "../etc" must be a bundle name ([A-Za-z0-9._-], no slashes) or "builtin"',
      'engine.digest: "sha256:XYZ" must be sha256:<64 lower-case hex digits>',
      'engine.rollout.burst: unknown field (expected one of: maxConcurrent, leaseSeconds)',
      'engine.rollout.maxConcurrent: 0 is out of range 1..10000',
      'engine.rollout.leaseSeconds: must be an integer, got a number (1.5)',
    ]);
    expect(errorsOf('engine: v2')).toEqual(['engine: must be a mapping, got a string']);
    expect(errorsOf(`engine: {version: builtin, digest: ${DIGEST}}`)).toEqual([
      'engine.digest: the builtin engine has no bundle to pin',
    ]);
  });
});
