import { describe, expect, it } from 'vitest';
import { applyPatch, escapePointer, pointer } from '../../../injector/src/inject/jsonpatch.js';
import type { JsonPatchOp } from '../../../injector/src/inject/jsonpatch.js';

describe('JSON pointer escaping (RFC 6901)', () => {
  it('escapes ~ before /', () => {
    expect(escapePointer('remora.dev/status')).toBe('remora.dev~1status');
    expect(escapePointer('a~/b')).toBe('a~0~1b');
    expect(pointer('metadata', 'annotations', 'x/~y', 0)).toBe('/metadata/annotations/x~1~0y/0');
  });

  it('round-trips through the applier', () => {
    const doc = { m: { 'a/b': 1, 'c~d': 2 } };
    expect(applyPatch(doc, [{ op: 'replace', path: pointer('m', 'a/b'), value: 3 }])).toEqual({
      m: { 'a/b': 3, 'c~d': 2 },
    });
    expect(applyPatch(doc, [{ op: 'remove', path: pointer('m', 'c~d') }])).toEqual({ m: { 'a/b': 1 } });
  });
});

describe('applyPatch (RFC 6902)', () => {
  const doc = { a: [1, 2], o: { k: 'v' } };

  it('add: to an object, into an array, at its end, and the whole document', () => {
    expect(applyPatch(doc, [{ op: 'add', path: '/o/n', value: 1 }])).toEqual({
      a: [1, 2],
      o: { k: 'v', n: 1 },
    });
    expect(applyPatch(doc, [{ op: 'add', path: '/a/0', value: 0 }]).a).toEqual([0, 1, 2]);
    expect(applyPatch(doc, [{ op: 'add', path: '/a/-', value: 3 }]).a).toEqual([1, 2, 3]);
    expect(applyPatch(doc, [{ op: 'add', path: '/a/2', value: 3 }]).a).toEqual([1, 2, 3]);
    expect(applyPatch(doc, [{ op: 'add', path: '', value: { z: 1 } }])).toEqual({ z: 1 });
  });

  it('replace keeps the key position; remove; test; move; copy', () => {
    expect(Object.keys(applyPatch({ x: 1, y: 2, z: 3 }, [{ op: 'replace', path: '/y', value: 9 }]))).toEqual([
      'x',
      'y',
      'z',
    ]);
    expect(applyPatch(doc, [{ op: 'remove', path: '/a/0' }]).a).toEqual([2]);
    expect(applyPatch(doc, [{ op: 'test', path: '/o/k', value: 'v' }])).toEqual(doc);
    expect(applyPatch(doc, [{ op: 'move', from: '/o/k', path: '/o/m' }]).o).toEqual({ m: 'v' });
    expect(applyPatch(doc, [{ op: 'copy', from: '/a', path: '/b' }])).toMatchObject({ a: [1, 2], b: [1, 2] });
  });

  it('never mutates its input, nor shares values with the patch', () => {
    const value = { deep: [1] };
    const out = applyPatch(doc, [{ op: 'add', path: '/v', value }]) as unknown as { v: { deep: number[] } };
    out.v.deep.push(2);
    expect(value.deep).toEqual([1]);
    expect(doc).toEqual({ a: [1, 2], o: { k: 'v' } });
  });

  const failing: [string, JsonPatchOp][] = [
    ['add under a missing parent', { op: 'add', path: '/missing/x', value: 1 }],
    ['add past the end of an array', { op: 'add', path: '/a/5', value: 1 }],
    ['a non-numeric array index', { op: 'add', path: '/a/x', value: 1 }],
    ['a leading-zero array index', { op: 'remove', path: '/a/01' }],
    ['remove a missing key', { op: 'remove', path: '/o/nope' }],
    ['replace a missing key', { op: 'replace', path: '/o/nope', value: 1 }],
    ['a failing test', { op: 'test', path: '/o/k', value: 'w' }],
    ['a pointer without a leading slash', { op: 'add', path: 'o', value: 1 }],
  ];
  it.each(failing)('fails on %s', (_name, op) => {
    expect(() => applyPatch(doc, [op])).toThrow();
  });
});
