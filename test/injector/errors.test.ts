import { describe, expect, it } from 'vitest';
import { RemoraError } from '@remora/proxy';
import {
  InjectorConfigError,
  MalformedReviewError,
  ManifestError,
  MeshConfigError,
} from '../../injector/src/errors.js';

describe('injector errors', () => {
  const table: [RemoraError, string, string, string][] = [
    [
      new MeshConfigError(['a: bad', 'b: bad']),
      'MeshConfigError',
      'RMR_INJ_MESH_CONFIG_INVALID',
      'invalid mesh config:\n  - a: bad\n  - b: bad',
    ],
    [
      new MalformedReviewError('request.uid is missing'),
      'MalformedReviewError',
      'RMR_INJ_REVIEW_MALFORMED',
      'request.uid is missing',
    ],
    [
      new ManifestError('app.yaml', 3, 'invalid YAML'),
      'ManifestError',
      'RMR_INJ_MANIFEST_INVALID',
      'app.yaml: document 3: invalid YAML',
    ],
    [
      new InjectorConfigError(['X: bad']),
      'InjectorConfigError',
      'RMR_INJ_CONFIG_INVALID',
      'invalid injector configuration:\n  - X: bad',
    ],
  ];
  it.each(table)('%s has its name, stable code and message', (err, name, code, message) => {
    expect(err).toBeInstanceOf(RemoraError);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
  });

  it('codes are never reused', () => {
    expect(new Set(table.map((t) => t[2])).size).toBe(table.length);
  });
});
